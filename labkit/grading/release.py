"""Generate the student notebooks in ``labs/`` from the reference solutions in ``solutions/``.

In a solution's code cell, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
become one ``raise NotImplementedError(hint)`` at the same indentation. Lines inside the region
that start with ``# HINT:`` give the hint; without one the stub names what to replace:

>>> strip_solutions('''def add(a, b):
...     ### BEGIN SOLUTION
...     # HINT: use the + operator
...     return a + b
...     ### END SOLUTION''')
'def add(a, b):\\n    raise NotImplementedError("use the + operator")'

In markdown cells, ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->`` becomes
``*Your answer here.*``. Cells tagged ``solution-only`` are dropped. Outputs and execution counts
are cleared, so running the release twice writes the same bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from labkit.grading.notebook import NotebookError, read_notebook

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "# HINT:"
MARKDOWN_BEGIN = "<!-- BEGIN SOLUTION -->"
MARKDOWN_END = "<!-- END SOLUTION -->"
MARKDOWN_PLACEHOLDER = "*Your answer here.*"
SOLUTION_ONLY_TAG = "solution-only"
DEFAULT_HINT = "replace this line with your code"


class ReleaseError(ValueError):
    """A solution notebook has unbalanced or nested solution markers."""


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each solution region of a code cell with a ``NotImplementedError`` stub."""
    output: list[str] = []
    region_start = None
    indent = ""
    hints: list[str] = []

    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if region_start is not None:
                raise ReleaseError(f"{where}, line {number}: {BEGIN} inside another solution "
                                   f"region (opened on line {region_start}); close it first")
            region_start, indent, hints = number, line[:len(line) - len(line.lstrip())], []
        elif stripped.startswith(END):
            if region_start is None:
                raise ReleaseError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            message = " ".join(hints) or DEFAULT_HINT
            output.append(f"{indent}raise NotImplementedError({json.dumps(message)})")
            region_start = None
        elif region_start is not None:
            if stripped.startswith(HINT):
                hints.append(stripped[len(HINT):].strip())
        else:
            output.append(line)

    if region_start is not None:
        raise ReleaseError(f"{where}, line {region_start}: {BEGIN} is never closed by {END}")
    return "\n".join(output)


def strip_markdown_solutions(source: str, where: str = "cell") -> str:
    """Replace each markdown solution region with a placeholder for the student's answer."""
    pattern = re.compile(re.escape(MARKDOWN_BEGIN) + r".*?" + re.escape(MARKDOWN_END), re.DOTALL)
    stripped = pattern.sub(MARKDOWN_PLACEHOLDER, source)
    if MARKDOWN_BEGIN in stripped or MARKDOWN_END in stripped:
        raise ReleaseError(f"{where}: unbalanced {MARKDOWN_BEGIN} / {MARKDOWN_END}")
    return stripped


def solution_lines(source: str) -> list[str]:
    """Return the lines inside the solution regions of a code cell (what must never reach labs/)."""
    lines, inside = [], False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            inside = True
        elif stripped.startswith(END):
            inside = False
        elif inside:
            lines.append(line)
    return lines


def release_notebook(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Return the student version of one solution notebook (the input is not changed)."""
    lab = nbformat.from_dict(json.loads(json.dumps(solution)))
    cells = []
    for number, cell in enumerate(lab.cells, start=1):
        if SOLUTION_ONLY_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        where = f"{name}, cell {number}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = strip_markdown_solutions(cell.source, where)
        cells.append(cell)
    lab.cells = cells
    lab.metadata.setdefault("labkit", {})["generated_from"] = f"solutions/{name}"
    return lab


def render(notebook: nbformat.NotebookNode) -> str:
    """Serialize a notebook the way nbformat writes it, so the text is stable between runs."""
    return nbformat.writes(notebook) + "\n"


@dataclass
class ReleasedLab:
    """One lab written (or checked) by :func:`release`."""

    solution: Path
    lab: Path
    changed: bool


def release(solutions_dir: Path, labs_dir: Path, *, check: bool = False) -> list[ReleasedLab]:
    """Write ``labs_dir/X.ipynb`` for every ``solutions_dir/X.ipynb``; with ``check``, write nothing.

    ``changed`` is True where the lab on disk differs from what the solution generates (drift).
    """
    solutions = sorted(solutions_dir.glob("*.ipynb"))
    if not solutions:
        raise ReleaseError(f"no solution notebooks (*.ipynb) in {solutions_dir}")
    results = []
    for solution_path in solutions:
        try:
            solution = read_notebook(solution_path)
        except NotebookError as error:
            raise ReleaseError(str(error)) from None
        text = render(release_notebook(solution, solution_path.name))
        lab_path = labs_dir / solution_path.name
        current = lab_path.read_text(encoding="utf-8") if lab_path.is_file() else None
        changed = current != text
        if changed and not check:
            labs_dir.mkdir(parents=True, exist_ok=True)
            lab_path.write_text(text, encoding="utf-8")
        results.append(ReleasedLab(solution_path, lab_path, changed))
    return results
