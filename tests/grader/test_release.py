"""labkit release: solution regions become stubs, labs/ matches solutions/, no solution leaks."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from labkit.grading.labs import LABS, course_root
from labkit.grading.notebook import code_cells, notebook_lab, read_notebook
from labkit.grading.release import (
    ReleaseError,
    release,
    release_notebook,
    solution_lines,
    strip_markdown_solutions,
    strip_solutions,
)

ROOT = course_root()


def test_stub_keeps_indentation_and_hint():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    # HINT: double it\n    # HINT: with *\n"
              "    return 2 * x\n    ### END SOLUTION\n\nprint(f)")
    assert strip_solutions(source) == ('def f(x):\n    raise NotImplementedError("double it with *")\n'
                                       "\nprint(f)")


def test_stub_without_hint_says_what_to_do():
    stub = strip_solutions("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    assert stub == 'raise NotImplementedError("replace this line with your code")'


def test_two_regions_in_one_cell():
    source = ("def a():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
              "def b():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION")
    stripped = strip_solutions(source)
    assert stripped.count("raise NotImplementedError") == 2
    assert "return" not in stripped


def test_hint_with_quotes_stays_valid_python():
    stub = strip_solutions('### BEGIN SOLUTION\n# HINT: use "split" and \\n\nx = 1\n### END SOLUTION')
    compile(stub, "stub", "exec")
    with pytest.raises(NotImplementedError, match='use "split"'):
        exec(stub)


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_rejected(source, problem):
    with pytest.raises(ReleaseError, match=problem):
        strip_solutions(source, "lab.ipynb, cell 3")


def test_markdown_answer_replaced():
    source = "Why?\n\n<!-- BEGIN SOLUTION -->\nBecause bytes.\n<!-- END SOLUTION -->\n"
    assert strip_markdown_solutions(source) == "Why?\n\n*Your answer here.*\n"
    with pytest.raises(ReleaseError):
        strip_markdown_solutions("<!-- BEGIN SOLUTION --> open")


def test_solution_only_cells_dropped_and_outputs_cleared():
    notebook = nbformat.v4.new_notebook(metadata={"labkit": {"lab": "9.9"}})
    keep = nbformat.v4.new_code_cell("x = 1", execution_count=4,
                                     outputs=[nbformat.v4.new_output("stream", text="1")])
    secret = nbformat.v4.new_code_cell("answer = 42", metadata={"tags": ["solution-only"]})
    notebook.cells = [keep, secret]
    lab = release_notebook(notebook, "lab_9_9.ipynb")
    assert [cell.source for cell in lab.cells] == ["x = 1"]
    assert lab.cells[0].outputs == []
    assert lab.cells[0].execution_count is None
    assert lab.metadata["labkit"] == {"lab": "9.9", "generated_from": "solutions/lab_9_9.ipynb"}
    assert len(notebook.cells) == 2, "the solution notebook itself is not changed"


def test_release_is_idempotent(tmp_path):
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    first = release(tmp_path / "solutions", tmp_path / "labs")
    assert all(result.changed for result in first)
    written = {path.name: path.read_bytes() for path in (tmp_path / "labs").glob("*.ipynb")}
    second = release(tmp_path / "solutions", tmp_path / "labs")
    assert not any(result.changed for result in second)
    assert written == {path.name: path.read_bytes() for path in (tmp_path / "labs").glob("*.ipynb")}


def test_check_mode_reports_drift_and_writes_nothing(tmp_path):
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    release(tmp_path / "solutions", tmp_path / "labs")
    lab = next((tmp_path / "labs").glob("*.ipynb"))
    lab.write_text(lab.read_text().replace("NotImplementedError", "NotImplementedErr", 1))
    drifted = [r for r in release(tmp_path / "solutions", tmp_path / "labs", check=True) if r.changed]
    assert [r.lab for r in drifted] == [lab]
    assert "NotImplementedErr(" in lab.read_text(), "check mode must not rewrite the lab"


def test_labs_folder_matches_solutions():
    drifted = [r.lab.name for r in release(ROOT / "solutions", ROOT / "labs", check=True) if r.changed]
    assert drifted == [], f"labs/ is out of date for {drifted}; run `labkit release`"


def strip_all_regions(sources: list[str]) -> list[str]:
    """Return the lines of the sources outside every solution region."""
    return [line for source in sources for line in strip_solutions(source).splitlines()]


@pytest.mark.parametrize("lab", sorted(LABS))
def test_no_solution_text_in_lab(lab):
    solution_path = LABS[lab].solution_path(ROOT)
    if not solution_path.exists():
        pytest.skip(f"lab {lab} has no solution notebook yet")
    solution = read_notebook(solution_path)
    released = read_notebook(LABS[lab].lab_path(ROOT))
    lab_text = "\n".join(cell.source for cell in released.cells)
    lab_lines = {line.strip() for line in lab_text.splitlines()}
    hidden = {line.strip() for source in code_cells(solution) for line in solution_lines(source)}
    # A line that the solution also has outside its regions is provided code, not an answer.
    provided = {line.strip() for line in strip_all_regions(code_cells(solution))}
    leaked = []
    for stripped in sorted(hidden - provided):
        # Short lines ("return ids", "else:") also occur in starter code; longer ones are solution code.
        if len(stripped) > 24 and not stripped.startswith("#") and stripped in lab_lines:
            leaked.append(stripped)
    assert leaked == []
    assert "### BEGIN SOLUTION" not in lab_text
    assert "### END SOLUTION" not in lab_text
    assert notebook_lab(released) == lab


@pytest.mark.parametrize("lab", sorted(LABS))
def test_every_stub_raises_not_implemented(lab):
    solution_path = LABS[lab].solution_path(ROOT)
    if not solution_path.exists():
        pytest.skip(f"lab {lab} has no solution notebook yet")
    solution_regions = sum(source.count("### BEGIN SOLUTION") for source in code_cells(read_notebook(solution_path)))
    lab_stubs = sum(source.count("raise NotImplementedError(")
                    for source in code_cells(read_notebook(LABS[lab].lab_path(ROOT))))
    assert solution_regions > 0
    assert lab_stubs == solution_regions


def test_release_command_check_passes(capsys):
    from labkit.cli import main

    assert main(["release", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_release_without_solutions_folder(tmp_path, capsys):
    from labkit.cli import main

    assert main(["release", "--course-root", str(tmp_path)]) == 2
    assert "solutions/" in capsys.readouterr().err
