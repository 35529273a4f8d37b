"""Which type each tensor gets: hand-worked cases of llama.cpp's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf.constants import GGMLQuantizationType as T, GGUFValueType

from labkit.quantize import QuantizeError
from labkit.quantize.gguf_file import GGUFFile, MetadataField, TensorInfo
from labkit.quantize.recipes import (_fallback, allows_quantization, llama_cpp_order, plan_model,
                                     use_more_bits)


def info(name: str, shape: tuple[int, ...], ggml_type: T = T.F16) -> TensorInfo:
    return TensorInfo(name, shape, ggml_type, 0, 0)


def test_use_more_bits_for_30_layers():
    # n/8 = 3 and 7n/8 = 26: layers 0-2 and 26-29, plus (i - 3) % 3 == 2 from layer 5 on.
    chosen = [i for i in range(30) if use_more_bits(i, 30)]
    assert chosen == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]


def test_use_more_bits_for_18_layers():
    chosen = [i for i in range(18) if use_more_bits(i, 18)]
    assert chosen == [0, 1, 4, 7, 10, 13, 15, 16, 17]


def test_use_more_bits_for_9_layers():
    # n/8 = 1 and 7n/8 = 7: layer 0, layers 7-8, and (i - 1) % 3 == 2 for layers 3 and 6.
    assert [i for i in range(9) if use_more_bits(i, 9)] == [0, 3, 6, 7, 8]


def test_order_puts_global_tensors_first_then_layers_numerically():
    names = ["blk.10.attn_q.weight", "token_embd.weight", "blk.2.ffn_up.weight",
             "blk.2.attn_k.weight", "output_norm.weight"]
    ordered = [t.name for t in llama_cpp_order([info(n, (4, 4)) for n in names])]
    assert ordered == ["output_norm.weight", "token_embd.weight", "blk.2.attn_k.weight",
                       "blk.2.ffn_up.weight", "blk.10.attn_q.weight"]


@pytest.mark.parametrize("name, shape, expected", [
    ("blk.0.attn_q.weight", (64, 64), True),
    ("blk.0.attn_norm.weight", (64,), False),                # 1-D
    ("blk.0.attn_q.bias", (64, 64), False),                  # not a weight
    ("blk.0.attn_q_norm.weight", (64, 64), False),           # a norm, even if 2-D
    ("blk.0.ffn_gate_inp.weight", (8, 64), False),           # expert router
    ("position_embd.weight", (512, 64), False),
    ("blk.0.attn_q.weight", (1, 64), False),                 # one row: 1-D for ggml
    ("blk.0.attn_q.weight", (64, 1), True),                  # one column is still a matrix
])
def test_allows_quantization(name, shape, expected):
    assert allows_quantization(info(name, shape)) is expected


@pytest.mark.parametrize("row_length, target, expected", [
    (2048, T.Q4_K, T.Q4_K),
    (640, T.Q4_K, T.Q5_0),
    (640, T.Q6_K, T.Q8_0),
    (100, T.Q4_K, T.F16),
    (100, T.Q8_0, T.F16),
    (96, T.Q8_0, T.Q8_0),
])
def test_fallback_for_rows_not_whole_blocks(row_length, target, expected):
    assert _fallback(info("blk.0.ffn_up.weight", (8, row_length)), target)[0] == expected


def unsupported_model(arch: str, **fields) -> GGUFFile:
    metadata = {"general.architecture": MetadataField("general.architecture", GGUFValueType.STRING, arch)}
    for key, value in fields.items():
        metadata[f"{arch}.{key}"] = MetadataField(f"{arch}.{key}", GGUFValueType.UINT32, value)
    return GGUFFile(Path("model.gguf"), 3, metadata, [info("blk.0.attn_v.weight", (256, 256))], 32, 0,
                    buffer=None)


@pytest.mark.parametrize("model, fragment", [
    (unsupported_model("llama", block_count=80, **{"attention.head_count": 64,
                                                   "attention.head_count_kv": 8}), "70B"),
    (unsupported_model("falcon", block_count=2), "falcon"),
    (unsupported_model("mixtral", block_count=2, expert_count=8), "mixture of experts"),
])
def test_unsupported_recipes_are_named(model, fragment):
    with pytest.raises(QuantizeError, match=fragment):
        plan_model(model, "Q4_K_M")
    assert plan_model(model, "F16")[0].target == T.F16
