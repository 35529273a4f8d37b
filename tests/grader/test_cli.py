"""`labkit grade` on the command line and the pytest route of the hidden checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.cli import main
from labkit.grading.labs import course_root

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "submissions" / "lab_1_1"


def test_grade_folder_json_and_results_files(tmp_path, capsys):
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("invalid_json.ipynb", "wrong_lab.ipynb"):
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    out = tmp_path / "graded"

    assert main(["grade", str(folder), "--lab", "1.1", "--json", "--out", str(out)]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"invalid_json", "wrong_lab"}
    for name, result in printed.items():
        assert result["score"] == 0
        assert result["max_score"] == 32
        assert len(result["tests"]) == 18
        assert json.loads((out / name / "results.json").read_text()) == result
    assert "not a notebook (invalid JSON" in printed["invalid_json"]["output"]
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("submission,score,max_score,")
    assert len(rows) == 3


def test_grade_single_submission_text(tmp_path, capsys):
    out = tmp_path / "graded"
    assert main(["grade", str(FIXTURES / "bug_left_padding_mask.ipynb"), "--lab", "1.1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bug_left_padding_mask.ipynb: 29 / 32 points" in printed
    assert "FAIL     0/3  pad_batch pads right or left" in printed
    assert json.loads((out / "results.json").read_text())["score"] == 29


def test_grade_reports_usage_errors(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.ipynb"), "--lab", "1.1"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["grade", str(tmp_path), "--lab", "1.1"]) == 2
    assert "no .ipynb files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["grade", str(tmp_path), "--lab", "9.9"])


def test_pytest_route_with_submission():
    command = [sys.executable, "-m", "pytest", "tests/grading/test_lab_1_1.py", "-q", "-p",
               "no:cacheprovider", "--submission", str(FIXTURES / "bug_ties_largest.ipynb")]
    result = subprocess.run(command, cwd=course_root(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "hidden checks: 27 / 32 points" in result.stdout
    assert "2 failed, 16 passed" in result.stdout


def test_pytest_route_skips_other_labs():
    command = [sys.executable, "-m", "pytest", "tests/grading/test_lab_1_3.py", "-q", "-p",
               "no:cacheprovider", "--submission", str(FIXTURES / "solution.ipynb")]
    result = subprocess.run(command, cwd=course_root(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "skipped" in result.stdout


def test_parallel_grading_keeps_stdout(tmp_path):
    # Two jobs load llama.cpp vocabularies at the same time; Llama(verbose=False) points stdout at
    # /dev/null while it loads, and without a shared lock the JSON below came out empty.
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name in ("solution.ipynb", "bug_strict_decode.ipynb"):
        (folder / name).write_bytes((FIXTURES / name).read_bytes())
    command = [sys.executable, "-m", "labkit", "grade", str(folder), "--lab", "1.1", "--jobs", "2",
               "--json", "--out", str(tmp_path / "graded")]

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    assert printed["solution"]["score"] == 32
    assert printed["bug_strict_decode"]["score"] < 32
