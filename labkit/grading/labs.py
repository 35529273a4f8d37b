"""The labs the grader can grade: where each one's solution, student notebook and checks are.

>>> get_lab("1.1").solution_path(course_root())                  # doctest: +SKIP
PosixPath('/work/main/solutions/lab_1_1_tokenizer.ipynb')

The course folder is found from the installed ``labkit`` package (its parent, when that holds
``solutions/``) or given with ``--course-root``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from labkit.grading.runner import Limits


class LabError(LookupError):
    """An unknown lab id, or a course folder without the lab's files."""


@contextlib.contextmanager
def _no_services() -> Iterator[dict[str, str]]:
    yield {}


@dataclass(frozen=True)
class Lab:
    """One lab: its id, file names and the limits its notebook runs under."""

    id: str
    title: str
    notebook: str                      # the same file name in solutions/ and labs/
    checks: str                        # path inside the course folder
    limits: Limits = Limits()
    # Starts what one notebook needs (its own server, say) and yields environment variables for
    # it. Each notebook gets its own, so nothing one submission configures reaches another.
    services: Callable[[], ContextManager[dict[str, str]]] = field(default=_no_services, repr=False)
    # Whether the checks compare with the reference solution; if not, it is only run on demand.
    uses_reference: bool = True

    def solution_path(self, root: Path) -> Path:
        return root / "solutions" / self.notebook

    def lab_path(self, root: Path) -> Path:
        return root / "labs" / self.notebook

    def checks_path(self, root: Path) -> Path:
        return root / self.checks


@contextlib.contextmanager
def _databricks_stand_in() -> Iterator[dict[str, str]]:
    """Start a private Databricks stand-in for one lab 1.2 notebook and point it there."""
    from labkit.grading.services import databricks_stand_in

    with databricks_stand_in() as env:
        yield env


LABS: dict[str, Lab] = {lab.id: lab for lab in [
    Lab("1.1", "Implement a custom tokenizer", "lab_1_1_tokenizer.ipynb",
        "tests/grading/test_lab_1_1.py",
        Limits(cell_seconds=30, notebook_seconds=120, call_seconds=10)),
    Lab("1.2", "Call Foundation Model APIs", "lab_1_2_foundation_model_apis.ipynb",
        "tests/grading/test_lab_1_2.py",
        Limits(cell_seconds=90, notebook_seconds=200, call_seconds=30, memory_mb=3072),
        services=_databricks_stand_in, uses_reference=False),
    Lab("1.3", "Compare token costs across models", "lab_1_3_token_costs.ipynb",
        "tests/grading/test_lab_1_3.py",
        Limits(cell_seconds=60, notebook_seconds=150, call_seconds=15, memory_mb=3072)),
]}


def get_lab(lab_id: str) -> Lab:
    """Return the lab called ``lab_id`` (``"1.1"``), or raise :class:`LabError` listing the known ids."""
    try:
        return LABS[str(lab_id)]
    except KeyError:
        raise LabError(f"unknown lab {lab_id!r}; known labs: {', '.join(LABS)}") from None


def course_root(explicit: str | os.PathLike | None = None) -> Path:
    """Return the course folder (the one holding ``solutions/`` and ``tests/grading/``)."""
    candidates = [Path(explicit)] if explicit else [Path(__file__).resolve().parents[2], Path.cwd()]
    for candidate in candidates:
        if (candidate / "solutions").is_dir():
            return candidate.resolve()
    raise LabError(f"no course folder with a solutions/ folder found (tried "
                   f"{', '.join(str(c) for c in candidates)}); pass --course-root")
