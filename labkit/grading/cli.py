"""``labkit release`` writes labs/ from solutions/; ``labkit grade`` grades submitted notebooks.

    labkit release                 # regenerate labs/ (idempotent)
    labkit release --check         # exit 1 if labs/ differs from what solutions/ generates
    labkit grade submissions/ --lab 1.1 --jobs 2 --out graded/
    labkit grade alice.ipynb --lab 1.1 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from labkit.grading.labs import LABS, LabError, course_root, get_lab
from labkit.grading.release import ReleaseError, release

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    release_parser = subparsers.add_parser(
        "release", help="generate the student notebooks in labs/ from solutions/",
        description="Replace every ### BEGIN SOLUTION ... ### END SOLUTION region of the notebooks "
                    "in solutions/ with a NotImplementedError stub and write them to labs/.")
    release_parser.add_argument("--check", action="store_true",
                                help="write nothing; exit 1 if labs/ differs from solutions/")
    release_parser.add_argument("--course-root", metavar="DIR",
                                help="course folder holding solutions/ and labs/ (default: found "
                                     "from the labkit package or the current folder)")
    release_parser.set_defaults(handler=run_release)

    grade_parser = subparsers.add_parser(
        "grade", help="grade submitted lab notebooks with the hidden checks",
        description="Run each submitted notebook in a confined process and grade it with the "
                    "lab's hidden checks. Writes one Gradescope results.json per submission.")
    grade_parser.add_argument("submissions", nargs="+", metavar="SUBMISSION_OR_FOLDER",
                              help="notebook files, or folders whose *.ipynb files are graded")
    grade_parser.add_argument("--lab", required=True, choices=sorted(LABS), help="lab id")
    grade_parser.add_argument("--json", action="store_true",
                              help="print Gradescope-shaped JSON instead of the text summary "
                                   "(one object, or an object per submission name)")
    grade_parser.add_argument("--out", metavar="DIR", default="grading-results",
                              help="folder for results.json files and summary.csv "
                                   "(default: %(default)s)")
    grade_parser.add_argument("--jobs", type=int, default=2,
                              help="submissions graded at the same time (default: %(default)s)")
    grade_parser.add_argument("--course-root", metavar="DIR", help="course folder (see release)")
    grade_parser.set_defaults(handler=run_grade)


def run_release(args: argparse.Namespace) -> int:
    try:
        root = course_root(args.course_root)
        results = release(root / "solutions", root / "labs", check=args.check)
    except (LabError, ReleaseError) as error:
        print(f"labkit release: {error}", file=sys.stderr)
        return 2
    for result in results:
        if not result.changed:
            state = "up to date"
        else:
            state = "differs" if args.check else "written"
        print(f"{result.lab.relative_to(root)}: {state}")
    if args.check and any(result.changed for result in results):
        print("labs/ is out of date; run `labkit release`", file=sys.stderr)
        return 1
    return 0


def _collect(arguments: list[str]) -> tuple[list[Path], list[Path]]:
    """Return the notebooks to grade and the paths other submissions must not read."""
    submissions, protect = [], []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            submissions += found
            # The files too: a folder that contains the home folder cannot be denied as a whole.
            protect += [path.resolve(), *(p.resolve() for p in found)]
        elif path.exists():
            submissions.append(path)
            protect.append(path.resolve())
        else:
            raise FileNotFoundError(f"no such file or folder: {argument}")
    return submissions, protect


def _unique_names(submissions: list[Path]) -> list[str]:
    names, seen = [], {}
    for path in submissions:
        name = path.stem
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def run_grade(args: argparse.Namespace) -> int:
    from labkit.grading.grade import GradingSession, grade_many
    from labkit.grading.report import format_report, format_summary, summary_csv

    try:
        root = course_root(args.course_root)
        lab = get_lab(args.lab)
        submissions, protect = _collect(args.submissions)
    except (LabError, FileNotFoundError) as error:
        print(f"labkit grade: {error}", file=sys.stderr)
        return 2
    if not submissions:
        print(f"labkit grade: no .ipynb files in {', '.join(args.submissions)}", file=sys.stderr)
        return 2

    out = Path(args.out)
    names = _unique_names(submissions)
    single = len(submissions) == 1
    with GradingSession(lab, root, protect=protect) as session:
        log.info("grading %d submission(s) of lab %s (%g points) with %d job(s)",
                 len(submissions), lab.id, session.max_score, args.jobs)
        reports = grade_many(session, submissions, jobs=args.jobs)

    for name, report in zip(names, reports):
        report.write_results(out / "results.json" if single else out / name / "results.json")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.csv").write_text(summary_csv(reports), encoding="utf-8")

    if args.json:
        shaped = (reports[0].to_gradescope() if single else
                  {name: report.to_gradescope() for name, report in zip(names, reports)})
        print(json.dumps(shaped, indent=2))
    else:
        for report in reports:
            print(format_report(report))
            print()
        if not single:
            print(format_summary(reports))
        print(f"results written to {out}/")
    return 1 if any(report.grader_errors for report in reports) else 0
