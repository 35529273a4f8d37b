"""The book: every chapter in _toc.yml executes, and a failing cell fails the build."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("sections", []))
        for part in entry.get("parts", []):
            yield from _toc_files(part.get("chapters", []))


def chapter_notebooks():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"], *_toc_files(toc.get("chapters", [])), *_toc_files(toc.get("parts", []))]
    return [ROOT / f"{name}.ipynb" for name in files if (ROOT / f"{name}.ipynb").exists()]


def test_toc_lists_existing_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for name in [toc["root"], *_toc_files(toc.get("chapters", []))]:
        candidates = [ROOT / f"{name}{suffix}" for suffix in (".md", ".ipynb")]
        assert any(p.exists() for p in candidates), f"_toc.yml names {name}, which does not exist"


def test_chapters_committed_without_outputs():
    # Outputs come from the build on the reader's machine, never from the author's.
    for path in chapter_notebooks():
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} has stored outputs; clear them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda p: p.stem)
def test_chapter_executes(path):
    notebook = nbformat.read(path, as_version=4)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    client = NotebookClient(notebook, timeout=config["execute"]["timeout"], kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()          # raises CellExecutionError, naming the cell, on any error


def _throwaway_book(folder: Path, cell_source: str) -> Path:
    """Write a one-chapter book with our _config.yml whose chapter runs ``cell_source``."""
    folder.mkdir()
    shutil.copyfile(ROOT / "_config.yml", folder / "_config.yml")
    (folder / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n")
    (folder / "intro.md").write_text("# Throwaway book\n\n```{tableofcontents}\n```\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# Chapter"), nbformat.v4.new_code_cell(cell_source)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "chapter.ipynb")
    return folder


def _build(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(JUPYTER_BOOK), "build", str(folder), "--warningiserror", "--keep-going"],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_failing_cell_fails_build(tmp_path):
    good = _build(_throwaway_book(tmp_path / "good", "print(6 * 7)"))
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    assert "42" in (tmp_path / "good" / "_build" / "html" / "chapter.html").read_text()

    bad = _build(_throwaway_book(tmp_path / "bad", "raise RuntimeError('deliberate failure')"))
    assert bad.returncode != 0
    assert "deliberate failure" in bad.stdout + bad.stderr
