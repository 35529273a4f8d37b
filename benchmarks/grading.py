"""Grading one submission: how long `labkit grade` takes, against running the notebook in Jupyter.

    .venv/bin/python benchmarks/grading.py                       # lab 1.1, three repeats
    .venv/bin/python benchmarks/grading.py --labs 1.1 1.3 --repeat 1 --json results.json

For each lab, the anchor is executing the reference solution once with nbclient in a Jupyter
kernel (what ``pytest --nbval`` does per notebook, with no checks). The measured time is grading
that same solution as a submission: a fresh session, the confined notebook process, the reference
process, the services the lab needs (a stand-in for lab 1.2) and every hidden check, i.e.
``labkit grade solutions/X.ipynb --lab X``. It prints median seconds and the ratio grading /
Jupyter run; the target is under 60 s per submission on 2 cores.
"""

from __future__ import annotations

import os
import sys

# Python puts this script's folder first on sys.path; benchmarks/tokenize.py would then shadow
# the standard library's tokenize module, so the folder is removed.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import json
import logging
import statistics
import time

import nbclient

from labkit.grading.grade import GradingSession
from labkit.grading.labs import LABS, course_root, get_lab
from labkit.grading.notebook import read_notebook

TARGET_SECONDS = 60.0


def jupyter_run_seconds(lab_id: str) -> float:
    """Execute the lab's solution once in a Jupyter kernel (the anchor)."""
    lab = get_lab(lab_id)
    root = course_root()
    notebook = read_notebook(lab.solution_path(root))
    started = time.perf_counter()
    with lab.services() as env:
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": str(root / "solutions")}}).execute()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return time.perf_counter() - started


def grading_seconds(lab_id: str) -> tuple[float, float, float]:
    """Grade the lab's solution as a submission in a fresh session; return (seconds, score, max)."""
    lab = get_lab(lab_id)
    root = course_root()
    started = time.perf_counter()
    with GradingSession(lab, root) as session:
        report = session.grade(lab.solution_path(root))
    return time.perf_counter() - started, report.score, report.max_score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="+", default=["1.1"], choices=sorted(LABS), help="labs to grade")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    results = {}
    for lab_id in args.labs:
        anchors, graded, scores = [], [], set()
        for _ in range(args.repeat):
            # Alternate the two, so a change in machine load hits both alike.
            anchors.append(jupyter_run_seconds(lab_id))
            seconds, score, maximum = grading_seconds(lab_id)
            graded.append(seconds)
            scores.add((score, maximum))
        anchor, grade = statistics.median(anchors), statistics.median(graded)
        results[lab_id] = {"jupyter_run_s": round(anchor, 2), "grading_s": round(grade, 2),
                           "ratio": round(grade / anchor, 2), "scores": sorted(scores),
                           "under_target": grade < TARGET_SECONDS}
        print(f"lab {lab_id}: Jupyter run of the solution {anchor:.1f} s (anchor), "
              f"grading it {grade:.1f} s = {grade / anchor:.2f}x the anchor; "
              f"score {sorted(scores)}; target < {TARGET_SECONDS:.0f} s: "
              f"{'met' if grade < TARGET_SECONDS else 'MISSED'}")

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
