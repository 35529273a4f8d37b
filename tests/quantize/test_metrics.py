"""Measurements: block comparison, tensor error, perplexity and greedy generation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gguf import GGUFWriter

from labkit import assets
from labkit.quantize.metrics import (compare_blocks, evaluation_prompts, evaluation_text,
                                     greedy_agreement, greedy_generate, perplexity, tensor_errors)


def write_model(path, tensors: dict[str, np.ndarray]):
    writer = GGUFWriter(path, arch="llama")
    for name, values in tensors.items():
        writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_greedy_agreement_hand_worked():
    result = greedy_agreement([[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]],
                              [[1, 2, 3, 4], [5, 0, 7, 8], [0, 9, 9, 9]])
    assert result.identical_fraction == pytest.approx(1 / 3)
    assert result.mean_matching_prefix == pytest.approx((4 + 1 + 0) / 3)


def test_greedy_agreement_needs_same_prompt_count():
    with pytest.raises(ValueError):
        greedy_agreement([[1]], [[1], [2]])


def test_compare_blocks_counts_changed_blocks(tmp_path):
    values = np.arange(4 * 64, dtype=np.float32).reshape(4, 64)
    first = write_model(tmp_path / "a.gguf", {"w": values})
    changed = values.copy()
    changed[2, 40] += 1           # an F32 block is one value: one block differs
    second = write_model(tmp_path / "b.gguf", {"w": changed})
    comparison = compare_blocks(second, first)
    assert comparison.total == {"F32": 256}
    assert comparison.identical == {"F32": 255}
    assert comparison.files_identical is False
    assert compare_blocks(first, first).files_identical is True


def test_compare_blocks_reports_missing_and_mismatched(tmp_path):
    first = write_model(tmp_path / "a.gguf", {"w": np.ones((2, 32), np.float32),
                                               "v": np.ones((2, 32), np.float32)})
    second = write_model(tmp_path / "b.gguf", {"w": np.ones((2, 32), np.float16)})
    comparison = compare_blocks(second, first)
    assert comparison.missing == ["v"]
    assert comparison.type_mismatches == ["w"]
    assert comparison.identical == {"F32": 0}


def test_tensor_errors_hand_worked(tmp_path):
    baseline = write_model(tmp_path / "a.gguf", {"w": np.float32([[3, 4]])})
    noisy = write_model(tmp_path / "b.gguf", {"w": np.float32([[3, 5]])})
    assert tensor_errors(baseline, noisy) == {"w": pytest.approx(1 / 5)}     # |(0,1)| / |(3,4)|


def test_evaluation_text_and_prompts_are_prose():
    text = evaluation_text(5000)
    assert len(text) == 5000
    assert text.count(" ") > 500
    prompts = evaluation_prompts(4)
    assert len(prompts) == 4
    assert len(set(prompts)) == 4


@pytest.mark.slow
def test_perplexity_matches_direct_computation():
    """One window of 128 tokens: the second half scored by hand with llama-cpp-python's own
    ``Llama.logits_to_logprobs``, position by position."""
    from llama_cpp import Llama

    path = assets.model_path("smollm2")
    text = evaluation_text(4000)
    result = perplexity(path, text, n_tokens=128, n_ctx=128)

    llm = Llama(model_path=str(path), n_ctx=128, n_batch=128, logits_all=True, n_threads=1,
                verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False)[:128]
    llm.eval(tokens)
    logprobs = [float(Llama.logits_to_logprobs(llm.scores[position - 1])[tokens[position]])
                for position in range(64, 128)]
    llm.close()
    expected = math.exp(-sum(logprobs) / len(logprobs))
    assert result.n_scored == 64
    assert result.perplexity == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
def test_greedy_generate_is_deterministic_and_timed():
    path = assets.model_path("smollm2")
    prompts = ["The capital of France is", "def fibonacci(n):"]
    first = greedy_generate(path, prompts, n_tokens=6)
    second = greedy_generate(path, prompts, n_tokens=6)
    assert first.tokens == second.tokens
    assert [len(t) for t in first.tokens] == [6, 6]
    assert first.tokens_per_second > 0
