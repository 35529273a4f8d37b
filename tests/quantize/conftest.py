"""Shared inputs for the quantization tests: real weights, edge cases, llama.cpp references.

Expected values come from outside labkit: gguf-py's ``gguf.quants``, ggml's own C functions
(``ggml_oracle.py``, through ctypes) and llama.cpp's whole-file quantizer.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from gguf import quants as gguf_quants

from labkit import assets
from labkit.quantize.gguf_file import read_gguf


def _load_oracle():
    spec = importlib.util.spec_from_file_location("ggml_oracle", Path(__file__).with_name("ggml_oracle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ggml():
    """ggml's C quantize/dequantize functions from the installed llama-cpp-python."""
    return _load_oracle()


# Rows taken from real tensors: (model, tensor, number of rows). Row lengths are multiples of
# 256 so every format applies; together they cover the tensor types in the course models.
REAL_TENSORS = [
    ("gemma3-270m", "blk.0.ffn_down.weight", 96),        # Q6_K, rows of 2048
    ("gemma3-270m", "blk.5.attn_output.weight", 96),     # Q4_K, rows of 1024
    ("gemma3-270m", "token_embd.weight", 1024),          # Q8_0, rows of 640
    ("gemma3-270m", "blk.3.ffn_gate.weight", 256),       # Q5_0, rows of 640
    ("smollm2", "blk.7.ffn_down.weight", 128),           # Q4_1, rows of 1536
    ("smollm2", "token_embd.weight", 512),               # Q8_0, rows of 576
]


@pytest.fixture(scope="session")
def real_weights() -> dict[str, np.ndarray]:
    """Float32 rows of real weights, dequantized by gguf-py (not by labkit)."""
    weights = {}
    for model, name, n_rows in REAL_TENSORS:
        with read_gguf(assets.model_path(model)) as gguf_file:
            info = gguf_file.tensor(name)
            raw = np.array(gguf_file.tensor_bytes(info)[:n_rows])
        values = gguf_quants.dequantize(raw, info.ggml_type)
        weights[f"{model}:{name}"] = np.ascontiguousarray(values, dtype=np.float32)
    return weights


@pytest.fixture(scope="session")
def real_quantized() -> dict[str, tuple[str, np.ndarray]]:
    """Raw bytes of real quantized tensors: name -> (type name, uint8 rows)."""
    blobs = {}
    for model, name, n_rows in REAL_TENSORS:
        with read_gguf(assets.model_path(model)) as gguf_file:
            info = gguf_file.tensor(name)
            blobs[f"{model}:{name}"] = (info.type_name, np.array(gguf_file.tensor_bytes(info)[:n_rows]))
    return blobs


@pytest.fixture(scope="session")
def edge_cases() -> dict[str, np.ndarray]:
    """Rows of 512 values (two K-quant super-blocks, 16 small blocks) that stress rounding."""
    rng = np.random.default_rng(2024)
    n = 512
    normal = rng.standard_normal(n)
    cases = {
        "zeros": np.zeros(n),
        "negative zeros": -np.zeros(n),
        "mixed signed zeros": np.where(rng.random(n) < 0.5, 0.0, -0.0),
        "constant": np.full(n, 0.37),
        "negative constant": np.full(n, -2.5),
        "one spike": np.eye(1, n, 17)[0] * 3.0,
        "huge": normal * 1e30,
        "near float32 max": np.sign(normal) * 3.0e38,
        "beyond float16 range": normal * 1e6,
        "tiny": normal * 1e-20,
        "subnormal": normal * 1e-40,
        "smallest subnormal": np.full(n, 1.4e-45),
        "exact halves": np.round(normal * 8) / 8,
        "integer ramp": np.arange(n) - n / 2,
        "positive only": rng.random(n),
        "negative only": -rng.random(n),
        "heavy tail": rng.standard_t(1.5, n),
        "half zeros": np.concatenate([np.zeros(n // 2), normal[: n // 2]]),
        "sparse": normal * (rng.random(n) < 0.05),
        "mixed magnitudes": normal * 10.0 ** rng.integers(-30, 30, n),
    }
    return {name: values.astype(np.float32)[None, :] for name, values in cases.items()}
