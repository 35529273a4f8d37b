"""The confined notebook process: limits, restarts, calls, and what notebook code may touch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.grading.labs import course_root
from labkit.grading.grade import confinement_paths
from labkit.grading.runner import CallFailed, Limits, NotebookProcess
from labkit.grading.sandbox import PathGuard
from labkit.grading.wire import Handle

pytestmark = pytest.mark.slow

FAST = Limits(cell_seconds=2, notebook_seconds=30, call_seconds=2, memory_mb=1024, restarts=2)


def run(cells: list[str], limits: Limits = FAST, **kwargs) -> NotebookProcess:
    process = NotebookProcess(cells, limits, **kwargs)
    process.run()
    return process


def statuses(process: NotebookProcess) -> list[str]:
    return [outcome.status for outcome in process.outcomes]


def test_cells_share_a_namespace_and_magics_work():
    with run(["x = 20", "%time y = x + 1", "def f(a, b=1):\n    return a * y + b"]) as process:
        assert statuses(process) == ["ok", "ok", "ok"]
        assert process.call("f", 2, b=3) == 45


def test_endless_cell_is_interrupted_and_later_cells_run():
    with run(["while True:\n    pass", "after = 1", "def g():\n    return after"]) as process:
        assert statuses(process) == ["timeout", "ok", "ok"]
        assert process.call("g") == 1


def test_stubborn_cell_killed_and_skipped():
    stubborn = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    with run(["a = 1", stubborn, "def g():\n    return a"]) as process:
        assert statuses(process) == ["ok", "skipped", "ok"]
        assert "stopped answering" in process.outcomes[1].describe()
        assert process.call("g") == 1


@pytest.mark.parametrize("ending", ["import os\nos._exit(3)",
                                    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"])
def test_exiting_cell_skipped_on_rerun(ending):
    with run(["a = 1", ending, "def g():\n    return a + 1"]) as process:
        assert statuses(process) == ["ok", "skipped", "ok"]
        assert process.call("g") == 2


def test_sys_exit_is_a_cell_error():
    with run(["import sys\nsys.exit(4)", "b = 2"]) as process:
        assert statuses(process) == ["error", "ok"]
        assert process.outcomes[0].error["type"] == "SystemExit"


def test_memory_limit_error_reruns_without_the_cell():
    with run(["hog = bytearray(4 * 1024**3)", "def g():\n    return 'fine'"]) as process:
        assert statuses(process) == ["skipped", "ok"]
        assert "MemoryError" in process.outcomes[0].describe()
        assert process.call("g") == "fine"


def test_restarts_are_limited():
    cells = ["import os\nos._exit(1)"] * 4 + ["c = 3"]
    with run(cells, Limits(cell_seconds=2, call_seconds=2, restarts=2)) as process:
        assert statuses(process)[:3] == ["skipped", "skipped", "fatal"]
        with pytest.raises(CallFailed) as failure:
            process.call("anything")
        assert failure.value.kind == "lost"


def test_total_time_limit_skips_remaining_cells():
    cells = ["import time\ntime.sleep(1.5)"] * 4
    limits = Limits(cell_seconds=2, notebook_seconds=3, call_seconds=2)
    with run(cells, limits) as process:
        assert "skipped" in statuses(process)
        assert "used up its 3 s" in process.outcomes[-1].describe()


def test_call_failures_are_classified_without_messages():
    cells = ["def boom(secret):\n    raise ValueError(f'bad {secret}')",
             "def slow():\n    while True:\n        pass",
             "def todo():\n    raise NotImplementedError('later')",
             "class Counter:\n    def __init__(self):\n        self.n = 0\n"
             "    def add(self, k):\n        self.n += k\n        return self.n",
             "def make():\n    return Counter()",
             "cells_value = 3"]
    with run(cells) as process:
        with pytest.raises(CallFailed) as error:
            process.call("boom", "hidden-input-123")
        assert error.value.kind == "error"
        assert error.value.detail["type"] == "ValueError"
        assert (error.value.detail["cell"], error.value.detail["line"]) == (0, 2)
        assert "hidden-input-123" not in str(error.value.detail)

        with pytest.raises(CallFailed) as timeout:
            process.call("slow")
        assert timeout.value.kind == "timeout"

        with pytest.raises(CallFailed) as missing:
            process.call("nope")
        assert missing.value.kind == "missing"
        with pytest.raises(CallFailed) as not_function:
            process.call("cells_value")
        assert not_function.value.detail == {"type": "int", "not_callable": True}
        with pytest.raises(CallFailed):
            process.call("_private_name")

        handle = process.call("make")
        assert isinstance(handle, Handle) and handle.type_name == "Counter"
        assert process.call((handle, "add"), 5) == 5
        assert process.call((handle, "add"), 2) == 7


def test_printing_does_not_disturb_the_messages():
    cells = ['import os, sys\nprint(\'{"status": "ok", "value": 99}\')\n'
             'os.write(1, b\'{"status": "ok", "value": 98}\\n\')\nsys.stderr.write("noise\\n")',
             "def f():\n    print('more noise')\n    return 1"]
    with run(cells) as process:
        assert statuses(process) == ["ok", "ok"]
        assert process.call("f") == 1


def test_input_reads_nothing():
    with run(["value = input()"]) as process:
        assert process.outcomes[0].error["type"] == "EOFError"


def test_notebook_folder_is_private_and_removed():
    with run(["import os, tempfile\nhere = os.getcwd()\nscratch = tempfile.mkdtemp()",
              "def where():\n    return here, scratch"]) as process:
        here, scratch = process.call("where")
        assert Path(scratch).parent == Path(here)
        assert Path(here).is_dir()
    assert not Path(here).exists()


def test_course_folder_and_other_processes_denied():
    root = course_root()
    deny, allow = confinement_paths(root, root / "tests" / "grader" / "submissions" / "x.ipynb")
    cells = [
        f"open({str(root / 'solutions' / 'lab_1_1_tokenizer.ipynb')!r})",
        f"import os\nos.listdir({str(root / 'tests')!r})",
        f"import os\nos.symlink({str(root / 'solutions')!r}, 'link')\nopen('link/lab_1_1_tokenizer.ipynb')",
        "import os\nopen(f'/proc/{os.getppid()}/environ')",
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import labkit.tokenize, numpy\nok = True",  # the library and the environment stay readable
        "import os\nown = open(f'/proc/{os.getpid()}/status').read()[:4]",
    ]
    with run(cells, deny=deny, allow=allow) as process:
        assert statuses(process) == ["error"] * 6 + ["ok", "ok"]
        for outcome in process.outcomes[:6]:
            assert outcome.error["type"] == "PermissionError"


def test_path_guard_deepest_rule_wins(tmp_path):
    (tmp_path / "course" / "labkit").mkdir(parents=True)
    guard = PathGuard(deny=[str(tmp_path / "course")], allow=[str(tmp_path / "course" / "labkit")])
    assert not guard.allows(tmp_path / "course")
    assert not guard.allows(tmp_path / "course" / "solutions" / "x")
    assert guard.allows(tmp_path / "course" / "labkit" / "x.py")
    assert guard.allows(tmp_path / "course-other")
    assert guard.allows(3)  # an open file descriptor
    assert not guard.allows(f"/proc/{os.getppid()}/mem")
    assert guard.allows(f"/proc/{os.getpid()}/status")


def test_grader_environment_not_inherited(monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-grader")
    with run(["import os\ndef seen():\n    return sorted(os.environ)"], env={"LAB_SETTING": "1"}) as process:
        names = process.call("seen")
    assert "GRADER_SECRET_KEY" not in names
    assert "DATABRICKS_TOKEN" not in names
    assert "LAB_SETTING" in names
    assert "PATH" in names


def test_closing_the_message_pipe_is_survived():
    closer = "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass"
    with run(["a = 1", closer, "def g():\n    return a"]) as process:
        assert statuses(process) == ["ok", "skipped", "ok"]
        assert process.call("g") == 1
