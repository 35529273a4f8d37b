"""Grade the fixture submissions of each lab in one session and check each grade and its feedback.

The fixtures (``submissions/lab_X_Y``, written by ``make_submissions.py``) are the reference
solution or the released skeleton with one seeded bug or one hostile change each. Each lab's
fixtures are graded together, two at a time, as ``labkit grade`` does, so a hostile notebook that
disturbed the grader would show up in its neighbours' grades.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from labkit.grading.grade import GradingSession, grade_many
from labkit.grading.labs import course_root, get_lab
from labkit.grading.runner import Limits

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "submissions" / "lab_1_1"
ALL_CHECKS_1_1 = {
    "test_count_pairs", "test_merge", "test_pretokenize", "test_train_bpe_ties",
    "test_train_bpe_limits", "test_train_bpe_prose", "test_train_bpe_respects_chunks", "test_encode",
    "test_token_bytes", "test_decode_round_trip", "test_decode_invalid_input", "test_special_tokens",
    "test_decode_with_specials", "test_pad_batch", "test_pad_batch_rejects_bad_side",
    "test_bpe_with_ranks", "test_gpt2_vocabulary", "test_bytes_per_token",
}
FULL = 32.0

# name -> (score, checks that fail, {check or "notebook_runs" or "output": text in its feedback})
EXPECTED_1_1 = {
    "solution": (FULL, set(), {}),
    "untouched_skeleton": (0.0, ALL_CHECKS_1_1, {"test_merge": "is not implemented yet"}),
    "bug_merge_overlapping": (17.0, {"test_merge", "test_train_bpe_ties", "test_train_bpe_limits",
                                     "test_train_bpe_prose", "test_encode", "test_special_tokens"},
                              {"test_merge": "merge is wrong on every position matching"}),
    "bug_ties_largest": (27.0, {"test_train_bpe_ties", "test_train_bpe_prose"},
                         {"test_train_bpe_ties": "picks a different pair when counts tie"}),
    "bug_left_padding_mask": (29.0, {"test_pad_batch"},
                              {"test_pad_batch": "pad_batch is wrong for left padding to the longest"}),
    "bug_special_injection": (29.0, {"test_special_tokens"},
                              {"test_special_tokens": "must be encoded as ordinary text"}),
    "bug_strict_decode": (31.0, {"test_decode_invalid_input"},
                          {"test_decode_invalid_input": "raised UnicodeDecodeError"}),
    "syntax_error": (15.0, {"test_count_pairs", "test_merge", "test_train_bpe_ties", "test_train_bpe_limits",
                            "test_train_bpe_prose", "test_train_bpe_respects_chunks", "test_encode",
                            "test_special_tokens"},
                     {"notebook_runs": "SyntaxError", "test_merge": "is not defined in the notebook"}),
    "infinite_loop_cell": (0.0, ALL_CHECKS_1_1, {"notebook_runs": "stopped after its time limit"}),
    "infinite_loop_function": (28.0, {"test_decode_round_trip", "test_decode_invalid_input",
                                      "test_decode_with_specials"},
                               {"test_decode_round_trip": "did not return within the time limit",
                                "test_decode_invalid_input": "was not called again"}),
    "memory_exhaustion": (FULL, set(), {"notebook_runs": "MemoryError"}),
    "os_exit": (FULL, set(), {"notebook_runs": "exited with code 0"}),
    # Prints protocol-like lines, and count_pairs (which also prints one) is implemented.
    "noisy_output": (1.0, ALL_CHECKS_1_1 - {"test_count_pairs"}, {}),
    "sys_exit": (0.0, ALL_CHECKS_1_1, {"notebook_runs": "SystemExit"}),
    "killed": (0.0, ALL_CHECKS_1_1, {"notebook_runs": "SIGKILL"}),
    "read_solutions": (0.0, ALL_CHECKS_1_1, {"notebook_runs": "not allowed while grading"}),
    "snoop": (0.0, ALL_CHECKS_1_1, {"notebook_runs": "/proc/"}),
    "subprocess_cheat": (0.0, ALL_CHECKS_1_1, {"notebook_runs": "starting other processes is not allowed"}),
    "huge_return": (0.0, ALL_CHECKS_1_1, {"test_count_pairs": "larger than 16 MiB"}),
    "wrong_lab": (0.0, ALL_CHECKS_1_1, {"output": "this notebook is lab 1.2"}),
    "invalid_json": (0.0, ALL_CHECKS_1_1, {"output": "invalid JSON"}),
    "not_a_notebook": (0.0, ALL_CHECKS_1_1, {"output": "no 'cells' list"}),
}


@pytest.fixture(scope="module")
def reports():
    # Shorter limits than the course's, so the endless loops cost seconds, not minutes.
    lab = dataclasses.replace(get_lab("1.1"), limits=Limits(cell_seconds=10, notebook_seconds=90,
                                                            call_seconds=3, memory_mb=2048))
    paths = sorted(FIXTURES.glob("*.ipynb"))
    with GradingSession(lab, course_root(), protect=[FIXTURES]) as session:
        graded = grade_many(session, paths, jobs=2)
    return {Path(report.submission).stem: report for report in graded}


def test_every_fixture_has_an_expectation(reports):
    assert set(reports) == set(EXPECTED_1_1)


@pytest.mark.parametrize("name", sorted(EXPECTED_1_1))
def test_fixture_grade(reports, name):
    report = reports[name]
    score, failing, feedback = EXPECTED_1_1[name]
    assert report.grader_errors == []
    assert report.max_score == FULL
    assert report.score == score
    failed = {test.check for test in report.tests if test.status == "failed"} - {"notebook_runs"}
    assert failed == failing
    outputs = {test.check: test.output for test in report.tests}
    outputs["output"] = report.output
    for where, text in feedback.items():
        assert text in outputs[where], f"{name}: {where!r} feedback lacks {text!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED_1_1))
def test_feedback_reveals_no_expected_value(reports, name):
    for test in reports[name].tests:
        if test.check == "notebook_runs":
            continue  # the student's own tracebacks
        assert not re.search(r"[\[(]\d", test.output), f"{test.check}: {test.output}"
        assert "expected" not in test.output.lower()


def test_gradescope_shape(reports):
    shaped = json.loads(json.dumps(reports["bug_ties_largest"].to_gradescope()))
    assert shaped["score"] == 27.0
    assert shaped["max_score"] == FULL
    assert {"name", "score", "max_score", "status", "output"} <= set(shaped["tests"][1])
    assert {test["status"] for test in shaped["tests"]} == {"passed", "failed"}
    assert sum(test["score"] for test in shaped["tests"]) == shaped["score"]


def test_one_submission_grades_in_under_a_minute(reports):
    assert reports["solution"].execution_time < 60


# -- labs 1.2 and 1.3: three seeded bugs each, and the untouched skeleton -------------------------

EXPECTED_1_2 = {
    "bug_no_system": (18.0, {"test_chat_system_message"},
                      {"test_chat_system_message": "should send the system text as a system message"}),
    "bug_catch_all": (17.0, {"test_ask_or_explain"},
                      {"test_ask_or_explain": "should report an invalid parameter"}),
    "bug_user_rate_limit": (18.0, {"test_set_rate_limit"},
                            {"test_set_rate_limit": "one endpoint-wide limit"}),
    "untouched_skeleton": (0.0, {"test_list_chat_endpoints", "test_chat_reads_usage",
                                 "test_chat_system_message", "test_complete", "test_usage_cost",
                                 "test_create_endpoint", "test_ask_or_explain", "test_set_rate_limit",
                                 "test_count_rate_limited"},
                           {"test_complete": "is not implemented yet"}),
}

EXPECTED_1_3 = {
    "bug_cost_per_thousand": (14.0, {"test_request_cost", "test_cost_table"},
                              {"test_request_cost": "request_cost computes a wrong price"}),
    "bug_unsorted_table": (15.0, {"test_cost_table", "test_cost_table_order"},
                           {"test_cost_table_order": "not sorted by monthly cost"}),
    "bug_fractional_machines": (17.0, {"test_self_hosted_monthly_cost"},
                                {"test_self_hosted_monthly_cost": "self_hosted_monthly_cost is wrong"}),
    "untouched_skeleton": (0.0, {"test_count_tokens_cl100k", "test_count_tokens_llama3",
                                 "test_count_table", "test_request_cost", "test_cost_table",
                                 "test_cost_table_order", "test_template_overhead",
                                 "test_machine_capacity", "test_self_hosted_monthly_cost",
                                 "test_break_even_requests"},
                           {"test_request_cost": "is not implemented yet"}),
}

OTHER_LABS = {"1.2": (EXPECTED_1_2, 20.0), "1.3": (EXPECTED_1_3, 19.0)}


@pytest.fixture(scope="module", params=sorted(OTHER_LABS))
def lab_reports(request):
    lab = get_lab(request.param)
    folder = Path(__file__).parent / "submissions" / f"lab_{lab.id.replace('.', '_')}"
    with GradingSession(lab, course_root(), protect=[folder]) as session:
        graded = grade_many(session, sorted(folder.glob("*.ipynb")), jobs=2)
    return lab.id, {Path(report.submission).stem: report for report in graded}


def test_seeded_bugs_labs_1_2_1_3(lab_reports):
    lab_id, reports = lab_reports
    expected, full = OTHER_LABS[lab_id]
    assert set(reports) == set(expected)
    for name, (score, failing, feedback) in expected.items():
        report = reports[name]
        assert report.grader_errors == [], name
        assert report.max_score == full, name
        assert report.score == score, name
        failed = {test.check for test in report.tests if test.status == "failed"} - {"notebook_runs"}
        assert failed == failing, name
        outputs = {test.check: test.output for test in report.tests}
        for where, text in feedback.items():
            assert text in outputs[where], f"{name}: {where!r} feedback lacks {text!r}"
