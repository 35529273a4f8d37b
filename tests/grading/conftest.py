"""Run the hidden checks through pytest: ``pytest tests/grading/test_lab_1_1.py --submission NB``.

Name the checks file (or ``tests/grading``) on the command line: pytest registers ``--submission``
only for conftest files under the paths it is given.

Without ``--submission`` the checks grade the reference solution itself, which must score full
marks. Each check module names its lab in ``LAB``; a submission whose metadata names another lab
skips the other labs' modules. The summary at the end adds up the points.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.grading.checks import Notebook
from labkit.grading.grade import confinement_paths
from labkit.grading.labs import course_root, get_lab
from labkit.grading.notebook import code_cells, notebook_lab, read_notebook
from labkit.grading.runner import NotebookProcess

_points = {"earned": 0.0, "possible": 0.0}


def pytest_addoption(parser):
    parser.addoption("--submission", metavar="NOTEBOOK", default=None,
                     help="notebook to grade with the hidden checks (default: the lab's solution)")


def pytest_collection_modifyitems(items):
    # Every check runs a notebook in its own process: seconds to a minute per module.
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def lab_session(request):
    lab = get_lab(request.module.LAB)
    root = course_root()
    submission = request.config.getoption("--submission")
    path = Path(submission) if submission else lab.solution_path(root)
    notebook = read_notebook(path)
    if notebook_lab(notebook) not in (None, lab.id):
        pytest.skip(f"{path.name} is lab {notebook_lab(notebook)}, not lab {lab.id}")

    deny, allow = confinement_paths(root, path)
    solution = read_notebook(lab.solution_path(root))
    # Each notebook gets its own services (a private stand-in server for lab 1.2).
    with lab.services() as reference_env, lab.services() as student_env, \
            NotebookProcess(code_cells(solution), lab.limits, env=reference_env,
                            label="reference") as ref, \
            NotebookProcess(code_cells(notebook), lab.limits, env=student_env, deny=deny,
                            allow=allow, label=path.name) as student:
        yield Notebook(student, env=student_env), Notebook(ref, trusted=True, env=reference_env)


@pytest.fixture
def student(lab_session):
    return lab_session[0]


@pytest.fixture
def reference(lab_session):
    return lab_session[1]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    info = getattr(getattr(item, "function", None), "labkit_check", None)
    if info is None or report.when != "call":
        return
    _points["possible"] += info.points
    if report.passed:
        _points["earned"] += info.points


def pytest_terminal_summary(terminalreporter):
    if _points["possible"]:
        terminalreporter.write_line(
            f"hidden checks: {_points['earned']:g} / {_points['possible']:g} points")
