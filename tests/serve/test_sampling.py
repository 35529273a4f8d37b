"""Tests of labkit.serve.sampling: the numpy sampler against its plain-Python twin and hand-worked cases."""

import math

import numpy as np
import pytest

from labkit.serve.errors import InvalidRequest
from labkit.serve.sampling import (LOGIT_CUTOFF, SamplingParams, TokenSampler, log_softmax,
                                   sample_reference)


def _first_draw(seed: int, choice_index: int = 0) -> float:
    # The uniform number TokenSampler takes from its generator for its first token.
    return float(np.random.default_rng([seed, choice_index]).random())


CASES = [
    SamplingParams(temperature=0.0),
    SamplingParams(),
    SamplingParams(temperature=0.7, top_p=0.9),
    SamplingParams(temperature=1.3, top_k=5),
    SamplingParams(temperature=1.0, top_k=50, top_p=0.3),
    SamplingParams(temperature=1.0, top_k=1),
    SamplingParams(temperature=0.5, logit_bias={3: 5.0, 10: -100.0}),
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"T{p.temperature}-p{p.top_p}-k{p.top_k}")
def test_sampler_matches_reference(params):
    rng = np.random.default_rng(1234)
    for trial in range(150):
        size = int(rng.choice([12, 60, 500]))
        logits = (rng.standard_normal(size) * rng.uniform(0.3, 6.0)).astype(np.float32)
        if trial % 4 == 0:
            logits = np.round(logits)  # ties between equal logits
        seeded = SamplingParams(**{**vars(params), "seed": trial})
        expected = sample_reference(logits.tolist(), seeded, _first_draw(trial))
        assert TokenSampler(seeded).sample(logits) == expected, f"trial {trial}"


def test_sampler_matches_reference_with_penalties():
    rng = np.random.default_rng(7)
    params = SamplingParams(temperature=0.8, presence_penalty=0.5, frequency_penalty=1.0, seed=3)
    logits = rng.standard_normal(40).astype(np.float32) * 2
    sampler = TokenSampler(params)
    draws = np.random.default_rng([3, 0])
    counts: dict[int, int] = {}
    for _ in range(30):
        expected = sample_reference(logits.tolist(), params, float(draws.random()), counts)
        token = sampler.sample(logits)
        assert token == expected
        counts[token] = counts.get(token, 0) + 1


def test_reference_hand_worked_example():
    # probs of [2, 1, 0.5] at T=1: 0.629, 0.231, 0.140. top_k=2 keeps ids 0 and 1, renormalised to
    # 0.731 and 0.269; walking ids in order, u=0.9 passes 0.731 only at id 1.
    assert sample_reference([2.0, 1.0, 0.5], SamplingParams(top_k=2), u=0.9) == 1
    assert sample_reference([2.0, 1.0, 0.5], SamplingParams(top_k=2), u=0.7) == 0
    # top_p=0.6 keeps only id 0 (0.629 >= 0.6), whatever u is.
    assert sample_reference([2.0, 1.0, 0.5], SamplingParams(top_p=0.6), u=0.99) == 0


def test_greedy_takes_first_maximum():
    logits = np.array([1.0, 3.0, 3.0, 0.0], dtype=np.float32)
    assert TokenSampler(SamplingParams(temperature=0)).sample(logits) == 1


def test_same_seed_same_tokens():
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    first = TokenSampler(SamplingParams(seed=42))
    second = TokenSampler(SamplingParams(seed=42))
    assert [first.sample(logits) for _ in range(20)] == [second.sample(logits) for _ in range(20)]


def test_choices_draw_independently():
    logits = np.zeros(1000, dtype=np.float32)
    zero = TokenSampler(SamplingParams(seed=42), choice_index=0)
    one = TokenSampler(SamplingParams(seed=42), choice_index=1)
    assert [zero.sample(logits) for _ in range(10)] != [one.sample(logits) for _ in range(10)]


def test_sampling_frequencies_follow_softmax():
    logits = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32))
    sampler = TokenSampler(SamplingParams(seed=5))
    counts = np.bincount([sampler.sample(logits) for _ in range(6000)], minlength=3) / 6000
    # Binomial standard error is under 0.007 here; 0.03 is more than four of them.
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=0.03)


def test_logit_bias_forces_token():
    logits = np.zeros(100, dtype=np.float32)
    sampler = TokenSampler(SamplingParams(logit_bias={42: 100.0}, seed=1))
    assert {sampler.sample(logits) for _ in range(10)} == {42}


def test_frequency_penalty_stops_repeats():
    logits = np.array([5.0, 4.0, 3.0], dtype=np.float32)
    sampler = TokenSampler(SamplingParams(temperature=0, frequency_penalty=2.0))
    # 5 - 2 = 3 < 4 after one use of id 0; then 4 - 2 = 2 < 3 after one use of id 1.
    assert [sampler.sample(logits) for _ in range(3)] == [0, 1, 0]


def test_cutoff_drops_far_tokens():
    logits = np.array([0.0, -(LOGIT_CUTOFF + 1.0)], dtype=np.float32)
    sampler = TokenSampler(SamplingParams(temperature=1.0, seed=0))
    assert {sampler.sample(logits) for _ in range(200)} == {0}


def test_log_softmax_normalises():
    logits = np.array([1000.0, 1000.0, 999.0], dtype=np.float32)
    result = log_softmax(logits)
    assert math.isclose(float(np.exp(result.astype(np.float64)).sum()), 1.0, rel_tol=1e-6)
    assert math.isclose(float(result[0]), -math.log(2 + math.exp(-1)), rel_tol=1e-6)


@pytest.mark.parametrize("field, value", [
    ("temperature", -0.1), ("temperature", 2.5), ("temperature", float("nan")),
    ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1),
    ("presence_penalty", 2.5), ("frequency_penalty", -3.0),
])
def test_out_of_range_rejected(field, value):
    with pytest.raises(InvalidRequest) as raised:
        SamplingParams(**{field: value}).validate()
    assert raised.value.param == field


def test_logit_bias_outside_vocabulary_rejected():
    with pytest.raises(InvalidRequest) as raised:
        SamplingParams(logit_bias={50000: 1.0}).validate(n_vocab=49152)
    assert raised.value.param == "logit_bias"
    assert "49151" in raised.value.message
