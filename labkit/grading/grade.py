"""Grade submitted notebooks with a lab's hidden checks, many at a time.

>>> with GradingSession(get_lab("1.1"), course_root()) as session:   # doctest: +SKIP
...     report = session.grade(Path("submissions/alice.ipynb"))
>>> report.score, report.max_score                                 # doctest: +SKIP
(17.0, 20.0)

Each submission runs in its own confined process (:mod:`labkit.grading.runner`), and so does the
reference solution, once per session. The checks run here, in the grader, and compare the values
the two processes return, so no expected value is ever sent to student code.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import labkit
from labkit import assets
from labkit.grading.checks import CheckFailed, GraderError, Notebook, load_checks
from labkit.grading.labs import Lab
from labkit.grading.notebook import NotebookError, code_cells, notebook_lab, read_notebook
from labkit.grading.report import SubmissionReport, TestResult
from labkit.grading.runner import NotebookProcess

log = logging.getLogger(__name__)

NOTEBOOK_RUN_TEST = "Notebook runs from top to bottom"
# The checks of one submission stop after this many seconds; the rest score 0 with a message.
CHECKS_BUDGET_SECONDS = 120.0


def confinement_paths(root: Path, submission: Path,
                      protect: list[Path] = ()) -> tuple[list[Path], list[Path]]:
    """Return the folders a submission may not touch, and the ones inside them it may read.

    The notebook may read the library, the Python environment and the model cache. The course
    folder (solutions, checks) and the submissions in ``protect`` are off limits, except a folder
    that contains the home or temporary folder, because denying it would deny what Python itself
    needs.
    """
    allow = [Path(labkit.__file__).resolve().parent, Path(sys.prefix).resolve(),
             assets.cache_dir().resolve()]
    essential = [*allow, Path.home().resolve(), Path(tempfile.gettempdir()).resolve()]
    deny = [root.resolve(), submission.resolve()]
    for path in sorted(Path(p).resolve() for p in protect):
        if any(path == needed or path in needed.parents for needed in essential):
            continue
        # Sorted, so a folder comes before its files, which then need no rule of their own.
        if not any(path == denied or denied in path.parents for denied in deny):
            deny.append(path)
    return deny, allow


class GradingSession:
    """Grading state of one lab: its checks, its reference solution in a process, its services.

    ``protect`` adds folders submissions may not read (the folder of submissions, for example).
    """

    def __init__(self, lab: Lab, root: Path, *, protect: list[Path] = ()):
        self.lab = lab
        self.root = root
        self.protect = [Path(p).resolve() for p in protect]
        self.checks: list[Callable] = load_checks(lab.checks_path(root))
        self.max_score = sum(check.labkit_check.points for check in self.checks)
        self.reference: Notebook | None = None
        self._stack = ExitStack()

    def __enter__(self) -> "GradingSession":
        try:
            env = self._stack.enter_context(self.lab.services())
            solution = read_notebook(self.lab.solution_path(self.root))
            process = NotebookProcess(code_cells(solution), self.lab.limits, env=env,
                                      label=f"reference {self.lab.id}")
            self._stack.enter_context(process)
            self.reference = Notebook(process, trusted=True, env=env)
            if self.lab.uses_reference:
                # Run the reference while the first submission runs: the two overlap on two cores.
                threading.Thread(target=process.run, daemon=True).start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    # -- one submission -------------------------------------------------------------------------

    def _all_failed(self, report: SubmissionReport, reason: str) -> SubmissionReport:
        report.output = reason
        report.tests = [TestResult(check.labkit_check.behaviour, 0.0, check.labkit_check.points,
                                   "failed", f"Not graded: {reason}", check.labkit_check.name)
                        for check in self.checks]
        return report

    def grade(self, submission: Path) -> SubmissionReport:
        """Run one submission and every check; always returns a report, whatever the file holds."""
        started = time.monotonic()
        report = SubmissionReport(submission.name, self.lab.id)
        try:
            self._grade_into(report, submission)
        except GraderError as error:
            report.grader_errors.append(str(error))
        except Exception as error:  # noqa: BLE001 - one submission never stops the others
            log.exception("grading %s failed", submission)
            report.grader_errors.append(f"{type(error).__name__}: {error}")
            if not report.tests:
                self._all_failed(report, "the grader failed on this submission; see its log")
        report.execution_time = time.monotonic() - started
        return report

    def _grade_into(self, report: SubmissionReport, submission: Path) -> None:
        try:
            notebook = read_notebook(submission)
        except NotebookError as error:
            self._all_failed(report, str(error).replace(str(submission), submission.name))
            return

        lab_of_notebook = notebook_lab(notebook)
        if lab_of_notebook is not None and lab_of_notebook != self.lab.id:
            self._all_failed(report, f"this notebook is lab {lab_of_notebook} (from its metadata), "
                                     f"but it was graded as lab {self.lab.id}; submit the lab "
                                     f"{self.lab.id} notebook")
            return

        deny, allow = confinement_paths(self.root, submission, self.protect)
        with self.lab.services() as env, \
                NotebookProcess(code_cells(notebook), self.lab.limits, deny=deny, allow=allow,
                                env=env, label=submission.name) as process:
            outcomes = process.run()
            problems = [outcome.describe() for outcome in outcomes if outcome.status != "ok"]
            report.tests.append(TestResult(
                NOTEBOOK_RUN_TEST, 0.0, 0.0, "failed" if problems else "passed",
                "\n".join(problems[:15]) if problems else f"{len(outcomes)} code cells ran",
                "notebook_runs"))
            if lab_of_notebook is None:
                report.output = (f"This notebook has no lab id in its metadata; it was graded as "
                                 f"lab {self.lab.id}.")
            self._run_checks(report, Notebook(process, env=env))

    def _run_checks(self, report: SubmissionReport, student: Notebook) -> None:
        deadline = time.monotonic() + CHECKS_BUDGET_SECONDS
        for check in self.checks:
            info = check.labkit_check
            if time.monotonic() > deadline:
                report.tests.append(TestResult(info.behaviour, 0.0, info.points, "failed",
                                               "Not run: the submission used up its grading time "
                                               f"({CHECKS_BUDGET_SECONDS:.0f} s).", info.name))
                continue
            try:
                check(student, self.reference)
            except CheckFailed as failure:
                report.tests.append(TestResult(info.behaviour, 0.0, info.points, "failed",
                                               str(failure), info.name))
                continue
            except GraderError:
                raise
            except Exception as error:  # noqa: BLE001 - a value of the wrong shape breaks a check
                log.debug("check %s on %s: %s", info.name, report.submission,
                          traceback.format_exc())
                report.tests.append(TestResult(
                    info.behaviour, 0.0, info.points, "failed",
                    f"the value your function returned has an unexpected type or shape "
                    f"({type(error).__name__} while checking it)", info.name))
                continue
            report.tests.append(TestResult(info.behaviour, info.points, info.points, "passed",
                                           check=info.name))


def grade_many(session: GradingSession, submissions: list[Path], *, jobs: int = 2,
               on_report: Callable[[SubmissionReport], None] | None = None) -> list[SubmissionReport]:
    """Grade ``submissions`` with ``jobs`` notebook processes at a time, in the given order.

    Threads are enough here: each job mostly waits for its notebook process.
    """
    def grade_one(path: Path) -> SubmissionReport:
        report = session.grade(path)
        if on_report is not None:
            on_report(report)
        return report

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(grade_one, submissions))
