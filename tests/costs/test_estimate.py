"""Estimates for tokenizers we cannot run, checked on tokenizers we can."""

import pytest

from labkit.costs import estimate
from labkit.costs.counting import get_tokenizer


def test_character_rule_by_hand():
    assert estimate.estimate_by_characters("abcd") == 1
    assert estimate.estimate_by_characters("abcde") == 2
    assert estimate.estimate_by_characters("") == 0
    assert estimate.estimate_by_characters("abcdef", chars_per_token=3) == 2


def test_relative_error_sign():
    assert estimate.relative_error(estimate=90, truth=100) == pytest.approx(-0.1)
    assert estimate.relative_error(estimate=125, truth=100) == pytest.approx(0.25)


def test_sample_texts_cover_four_kinds():
    texts = estimate.sample_texts(size=500)
    assert set(texts) == {"prose", "code", "mixed", "json"}
    assert all(0 < len(text) <= 500 for text in texts.values())


def test_measured_errors_use_true_counts():
    texts = {"prose": "The quick brown fox jumps over the lazy dog. " * 20}
    rows = estimate.measure_errors(texts, tokenizers=("cl100k",), pairs=(("gpt-2", "cl100k"),))
    truth = len(get_tokenizer("cl100k").encode(texts["prose"]))
    proxy = len(get_tokenizer("gpt-2").encode(texts["prose"]))
    by_method = {row.method: row for row in rows}
    assert by_method["chars/4"].truth == truth
    assert by_method["chars/4"].estimate == estimate.estimate_by_characters(texts["prose"])
    assert (by_method["proxy gpt-2"].estimate, by_method["proxy gpt-2"].truth) == (proxy, truth)


def test_summary_reports_median_and_max():
    rows = [estimate.ErrorRow("chars/4", "x", "prose", 110, 100),
            estimate.ErrorRow("chars/4", "x", "code", 70, 100),
            estimate.ErrorRow("proxy y", "x", "code", 95, 100)]
    summary = estimate.summarize_errors(rows)
    assert summary["chars/4"]["median_abs"] == pytest.approx(0.2)
    assert summary["chars/4"]["max_abs"] == pytest.approx(0.3)
    assert summary["proxy"]["count"] == 1
