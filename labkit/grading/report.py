"""Grading results: per-check scores, Gradescope's ``results.json`` shape, and a terminal summary.

>>> report = SubmissionReport("alice.ipynb", "1.1", [
...     TestResult("encode round trip", 2, 2, "passed"),
...     TestResult("train_bpe ties", 0, 3, "failed", "train_bpe breaks ties differently")])
>>> report.score, report.max_score
(2.0, 5.0)
>>> report.to_gradescope()["tests"][1]["status"]
'failed'
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TestResult:
    """One check's outcome, as Gradescope shows it to the student."""

    name: str
    score: float
    max_score: float
    status: str            # "passed" | "failed"
    output: str = ""
    check: str = ""        # the check function's name, for tests and logs (not sent to Gradescope)

    def to_gradescope(self) -> dict:
        return {"name": self.name, "score": self.score, "max_score": self.max_score,
                "status": self.status, "output": self.output, "visibility": "visible"}


@dataclass
class SubmissionReport:
    """Everything the grader found about one submission."""

    submission: str
    lab: str
    tests: list[TestResult] = field(default_factory=list)
    output: str = ""                 # notes for the whole submission (an unreadable file, ...)
    execution_time: float = 0.0
    grader_errors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return float(sum(test.score for test in self.tests))

    @property
    def max_score(self) -> float:
        return float(sum(test.max_score for test in self.tests))

    @property
    def failed(self) -> list[TestResult]:
        return [test for test in self.tests if test.status != "passed"]

    def to_gradescope(self) -> dict:
        """Return the submission in the shape of Gradescope's ``results.json``."""
        return {"score": round(self.score, 3), "max_score": round(self.max_score, 3),
                "execution_time": round(self.execution_time, 1), "output": self.output,
                "visibility": "visible", "stdout_visibility": "hidden",
                "tests": [test.to_gradescope() for test in self.tests]}

    def write_results(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_gradescope(), indent=2) + "\n", encoding="utf-8")


def format_report(report: SubmissionReport) -> str:
    """Render one submission for the terminal: score, then one line per check."""
    lines = [f"{report.submission}: {report.score:g} / {report.max_score:g} points "
             f"(lab {report.lab}, {report.execution_time:.1f} s)"]
    if report.output:
        lines += ["  " + line for line in report.output.splitlines()]
    for test in report.tests:
        mark = "ok  " if test.status == "passed" else "FAIL"
        points = f"{test.score:g}/{test.max_score:g}"
        lines.append(f"  {mark} {points:>7}  {test.name}")
        if test.status != "passed" and test.output:
            lines += ["                 " + line for line in test.output.splitlines()[:12]]
    for error in report.grader_errors:
        lines.append(f"  GRADER ERROR: {error}")
    return "\n".join(lines)


def format_summary(reports: list[SubmissionReport]) -> str:
    """Render a table of many submissions: score, maximum, failed checks, time."""
    rows = [("SUBMISSION", "SCORE", "MAX", "FAILED", "SECONDS")]
    for report in reports:
        rows.append((report.submission, f"{report.score:g}", f"{report.max_score:g}",
                     str(len(report.failed)), f"{report.execution_time:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths)))
                     for row in rows)


def summary_csv(reports: list[SubmissionReport]) -> str:
    """Return one CSV row per submission, with a column per check, for a grade book."""
    names = [test.name for test in reports[0].tests] if reports else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["submission", "score", "max_score", *names])
    for report in reports:
        scores = {test.name: test.score for test in report.tests}
        writer.writerow([report.submission, report.score, report.max_score,
                         *(scores.get(name, "") for name in names)])
    return buffer.getvalue()
