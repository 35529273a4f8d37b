"""Reading submitted notebooks: clear errors for broken files, and the lab each notebook belongs to.

>>> notebook = read_notebook("labs/lab_1_1_tokenizer.ipynb")      # doctest: +SKIP
>>> notebook_lab(notebook)                                        # doctest: +SKIP
'1.1'
>>> len(code_cells(notebook))                                     # doctest: +SKIP
23

A notebook carries its lab in ``metadata.labkit.lab``; the release keeps it in ``labs/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

# A lab notebook is well under 1 MB without outputs; a 50 MB file is an attachment or an attack.
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024


class NotebookError(ValueError):
    """A file is not a notebook that can be graded."""


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read and validate a notebook (nbformat 4), raising :class:`NotebookError` with the reason."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise NotebookError(f"{path}: cannot be read ({error.strerror})") from None
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path}: {size / 1e6:.0f} MB is larger than the "
                            f"{MAX_NOTEBOOK_BYTES / 1e6:.0f} MB a lab notebook can be; clear its outputs")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotebookError(f"{path}: not a notebook (the file is not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise NotebookError(f"{path}: not a notebook (invalid JSON: {error}); "
                            "submit the .ipynb file saved by Jupyter") from None
    if not isinstance(data, dict) or "cells" not in data:
        raise NotebookError(f"{path}: not a notebook (no 'cells' list in the JSON)")
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # nbformat raises several unrelated types for a bad document
        raise NotebookError(f"{path}: not a valid notebook ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''})") from None
    return notebook


def notebook_lab(notebook: nbformat.NotebookNode) -> str | None:
    """Return the lab id stored in the notebook's metadata (``"1.1"``), or None."""
    lab = notebook.metadata.get("labkit", {}).get("lab")
    return str(lab) if lab is not None else None


def code_cells(notebook: nbformat.NotebookNode) -> list[str]:
    """Return the source of every code cell, in order."""
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]
