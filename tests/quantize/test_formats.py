"""Block formats: byte-identical to gguf-py and to ggml's C code, on real weights and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gguf import quants as gguf_quants
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from labkit.quantize import NonFiniteValuesError, QuantizeError, dequantize, get_format, quantize
from labkit.quantize.kquants_reference import Q4_KReference, Q6_KReference

ALL_FORMATS = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K", "Q6_K"]
GGUF_PY_QUANTIZES = ["BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0"]   # gguf-py has no K-quant quantizer


def identical_block_fraction(ours: np.ndarray, theirs: np.ndarray, type_name: str) -> float:
    type_size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]][1]
    return float((ours.reshape(-1, type_size) == theirs.reshape(-1, type_size)).all(axis=1).mean())


@pytest.mark.parametrize("type_name", ALL_FORMATS)
def test_layout_matches_ggml_sizes(type_name):
    fmt = get_format(type_name)
    assert (fmt.block_size, fmt.type_size) == GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    assert get_format(int(GGMLQuantizationType[type_name])) is fmt


@pytest.mark.parametrize("type_name", ALL_FORMATS)
def test_quantize_real_weights_matches_ggml(type_name, real_weights, ggml):
    for name, values in real_weights.items():
        if values.shape[-1] % get_format(type_name).block_size:
            continue
        fraction = identical_block_fraction(quantize(values, type_name), ggml.ggml_quantize(values, type_name),
                                            type_name)
        assert fraction == 1.0, f"{type_name} on {name}: {fraction:.4%} identical blocks"


@pytest.mark.parametrize("type_name", GGUF_PY_QUANTIZES)
def test_quantize_real_weights_matches_gguf_py(type_name, real_weights):
    for name, values in real_weights.items():
        expected = gguf_quants.quantize(values, GGMLQuantizationType[type_name])
        fraction = identical_block_fraction(quantize(values, type_name), expected, type_name)
        assert fraction == 1.0, f"{type_name} on {name}: {fraction:.4%} identical blocks"


@pytest.mark.parametrize("type_name", ALL_FORMATS)
def test_quantize_edge_cases_matches_ggml(type_name, ggml, edge_cases):
    mismatched = []
    for case, values in edge_cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # C overflows silently
            expected = ggml.ggml_quantize(values, type_name)
        if not np.array_equal(quantize(values, type_name), expected):
            mismatched.append(case)
    assert mismatched == []


@pytest.mark.parametrize("type_name", GGUF_PY_QUANTIZES)
def test_quantize_edge_cases_matches_gguf_py(type_name, edge_cases):
    # Only cases with finite scales, where gguf-py's numpy arithmetic is defined. Blocks of
    # signed zeros are left out too, because gguf-py takes the first zero's sign for the Q4_0 and
    # Q5_0 scale while ggml starts from +0.0. labkit follows ggml (tested above).
    for case in ["zeros", "constant", "negative constant", "one spike", "exact halves",
                 "integer ramp", "positive only", "heavy tail", "half zeros", "tiny"]:
        values = edge_cases[case]
        expected = gguf_quants.quantize(values, GGMLQuantizationType[type_name])
        assert np.array_equal(quantize(values, type_name), expected), case


def test_random_magnitudes_match_ggml(ggml):
    """Blocks scaled from 1e-44 to 1e38, so every scale path (overflow, underflow) is taken."""
    rng = np.random.default_rng(11)
    magnitudes = 10.0 ** rng.uniform(-44, 38, (600, 1))
    values = np.clip(rng.standard_normal((600, 256)) * magnitudes, -3e38, 3e38).astype(np.float32)
    for type_name in ALL_FORMATS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = ggml.ggml_quantize(values, type_name)
        fraction = identical_block_fraction(quantize(values, type_name), expected, type_name)
        assert fraction == 1.0, f"{type_name}: {fraction:.4%} identical blocks"


def test_dequantize_real_files_matches_gguf_py_and_ggml(real_quantized, ggml):
    for name, (type_name, raw) in real_quantized.items():
        ours = dequantize(raw, type_name)
        from_gguf_py = gguf_quants.dequantize(raw, GGMLQuantizationType[type_name])
        from_ggml = ggml.ggml_dequantize(raw, type_name)
        assert np.array_equal(ours.view(np.uint32), from_gguf_py.view(np.uint32)), name
        assert np.array_equal(ours.view(np.uint32), from_ggml.view(np.uint32)), name


@pytest.mark.parametrize("type_name", ALL_FORMATS)
def test_dequantize_matches_gguf_py_and_ggml(type_name, real_weights, ggml):
    values = real_weights["gemma3-270m:blk.0.ffn_down.weight"]
    raw = ggml.ggml_quantize(values, type_name)
    ours = dequantize(raw, type_name)
    assert np.array_equal(ours.view(np.uint32), ggml.ggml_dequantize(raw, type_name).view(np.uint32))
    expected = gguf_quants.dequantize(raw, GGMLQuantizationType[type_name])
    assert np.array_equal(ours.view(np.uint32), expected.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("reference", [Q4_KReference(), Q6_KReference()], ids=["Q4_K", "Q6_K"])
def test_readable_twin_matches_fast_path(reference, real_weights, edge_cases):
    fast = get_format(reference.name)
    blocks = np.concatenate([real_weights["gemma3-270m:blk.0.ffn_down.weight"][:1].reshape(-1, 256),
                             *(values.reshape(-1, 256) for values in edge_cases.values())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        slow = reference.quantize_blocks(blocks)
    assert slow.tobytes() == fast.quantize_blocks(blocks).tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = reference.dequantize_blocks(slow)
        got = fast.dequantize_blocks(slow)
    assert np.array_equal(expected.view(np.uint32), got.view(np.uint32))


def test_quantize_then_dequantize_error_shrinks_with_bits():
    # Heavy-tailed synthetic weights: the course's real weights already sit on the grid of the
    # format they were published in, which makes requantizing to that format nearly lossless.
    values = np.random.default_rng(3).standard_t(5, (64, 1024)).astype(np.float32)
    errors = {name: float(np.linalg.norm(dequantize(quantize(values, name), name) - values)
                          / np.linalg.norm(values))
              for name in ["Q4_0", "Q4_K", "Q5_0", "Q6_K", "Q8_0", "F16"]}
    assert errors["Q4_K"] < errors["Q4_0"]
    assert errors["Q5_0"] < errors["Q4_K"]
    assert errors["Q6_K"] < errors["Q5_0"]
    assert errors["Q8_0"] < errors["Q6_K"]
    assert errors["F16"] < errors["Q8_0"]


def test_zero_q6_k_block_is_all_zero_bytes():
    assert not quantize(np.zeros(256, dtype=np.float32), "Q6_K").any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_rejected(bad):
    values = np.zeros((3, 64), dtype=np.float32)
    values[2, 17] = bad
    with pytest.raises(NonFiniteValuesError) as raised:
        quantize(values, "Q8_0")
    assert "1 of 192 values" in str(raised.value)
    assert "(2, 17)" in str(raised.value)


def test_row_not_multiple_of_block_rejected():
    with pytest.raises(QuantizeError) as raised:
        quantize(np.zeros((2, 100), dtype=np.float32), "Q4_K")
    message = str(raised.value)
    assert "row length 100" in message
    assert "block size 256" in message


def test_dequantize_partial_block_rejected():
    with pytest.raises(QuantizeError, match="34 bytes"):
        dequantize(np.zeros(40, dtype=np.uint8), "Q8_0")


def test_dequantize_needs_bytes():
    with pytest.raises(QuantizeError, match="uint8"):
        dequantize(np.zeros(34, dtype=np.float32), "Q8_0")


def test_unknown_format_rejected():
    with pytest.raises(QuantizeError, match="Q3_K"):
        get_format("Q3_K")


def test_shapes_round_trip():
    values = np.random.default_rng(0).standard_normal((2, 3, 256)).astype(np.float32)
    packed = quantize(values, "Q6_K")
    assert packed.shape == (2, 3, 210)
    assert dequantize(packed, "Q6_K").shape == (2, 3, 256)
