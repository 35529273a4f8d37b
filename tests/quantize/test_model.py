"""Whole-model quantization: byte-identical to llama.cpp's quantizer, loadable, clear on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from labkit import assets
from labkit.models import load_model
from labkit.quantize import QuantizeError
from labkit.quantize.gguf_file import read_gguf
from labkit.quantize.llama_cpp_quantizer import quantize_with_llama_cpp
from labkit.quantize.metrics import compare_blocks
from labkit.quantize.model import quantize_model


def assert_same_as_llama_cpp(ours: Path, theirs: Path) -> None:
    comparison = compare_blocks(ours, theirs)
    report = ", ".join(f"{name} {fraction:.4%}" for name, fraction in comparison.fraction.items())
    print(f"\n{ours.name}: identical blocks per type: {report}")
    assert comparison.missing == []
    assert comparison.type_mismatches == []
    for name, fraction in comparison.fraction.items():
        assert fraction == 1.0, f"{name}: {fraction:.4%} identical blocks"
    assert comparison.files_identical


@pytest.fixture(scope="session")
def smollm2_f16(tmp_path_factory) -> Path:
    """SmolLM2's F16 baseline, written by labkit from the published Q4_1 file."""
    path = tmp_path_factory.mktemp("smollm2") / "smollm2-f16.gguf"
    quantize_model(assets.model_path("smollm2"), path, "F16", allow_requantize=True, progress=False)
    return path


@pytest.mark.slow
def test_f16_from_q4_1_matches_llama_cpp(smollm2_f16, tmp_path):
    reference = tmp_path / "llama-cpp-f16.gguf"
    quantize_with_llama_cpp(assets.model_path("smollm2"), reference, "F16", allow_requantize=True)
    assert_same_as_llama_cpp(smollm2_f16, reference)


@pytest.fixture(scope="session")
def smollm2_quantized(smollm2_f16):
    """labkit's quantizations of the SmolLM2 baseline, made once: file type -> path."""
    made = {}

    def quantized(file_type: str) -> Path:
        if file_type not in made:
            made[file_type] = smollm2_f16.with_name(f"smollm2-{file_type}-labkit.gguf")
            quantize_model(smollm2_f16, made[file_type], file_type, progress=False)
        return made[file_type]
    return quantized


@pytest.mark.slow
@pytest.mark.parametrize("file_type", ["Q8_0", "Q4_K_M", "BF16"])
def test_smollm2_matches_llama_cpp(smollm2_f16, smollm2_quantized, tmp_path, file_type):
    theirs = tmp_path / "llama-cpp.gguf"
    quantize_with_llama_cpp(smollm2_f16, theirs, file_type)
    assert_same_as_llama_cpp(smollm2_quantized(file_type), theirs)


@pytest.mark.slow
def test_gemma_q4_k_m_matches_llama_cpp(tmp_path):
    """Gemma 3 270M: 640-wide rows, so Q4_K_M falls back to Q5_0 and Q8_0 for most tensors."""
    baseline = tmp_path / "gemma-f16.gguf"
    quantize_model(assets.model_path("gemma3-270m"), baseline, "F16", allow_requantize=True,
                   progress=False)
    ours, theirs = tmp_path / "labkit.gguf", tmp_path / "llama-cpp.gguf"
    quantize_model(baseline, ours, "Q4_K_M", progress=False)
    quantize_with_llama_cpp(baseline, theirs, "Q4_K_M")
    assert_same_as_llama_cpp(ours, theirs)
    types = {t.type_name for t in read_gguf(ours).tensors}
    assert types == {"F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"}


@pytest.mark.slow
def test_quantized_model_runs_in_llama_cpp(smollm2_quantized):
    llm = load_model(smollm2_quantized("Q4_K_M"), n_ctx=256, n_threads=1)
    text = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)["choices"][0]["text"]
    llm.close()
    assert "Paris" in text


# ---------------------------------------------------------------------------------------------
# A tiny synthetic llama model: edge-case weights through both whole-file quantizers
# ---------------------------------------------------------------------------------------------

def write_tiny_model(path: Path, special_rows: np.ndarray) -> Path:
    """Write a one-layer llama model that llama.cpp's quantizer accepts.

    ``special_rows`` (float32 rows of 256) become attn_q, which Q4_K_M makes Q4_K, and ffn_down,
    which it makes Q6_K because layer 0 gets more bits. The token embeddings are stored as F16.
    """
    rng = np.random.default_rng(5)
    writer = GGUFWriter(path, arch="llama")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(256)
    writer.add_feed_forward_length(512)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tensor("token_embd.weight", rng.standard_normal((16, 256)).astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(256, dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", special_rows)
    writer.add_tensor("blk.0.ffn_down.weight", special_rows)
    writer.add_tensor("blk.0.attn_v.weight", rng.standard_normal((8, 256)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def edge_case_rows(case: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(case.reshape(-1, 256))


@pytest.mark.parametrize("file_type", ["Q8_0", "Q4_K_M", "F16"])
def test_edge_cases_match_llama_cpp_whole_file(tmp_path, edge_cases, file_type):
    rejected_by_both = []
    for index, (case, values) in enumerate(edge_cases.items()):
        source = write_tiny_model(tmp_path / f"case{index}.gguf", edge_case_rows(values))
        ours, theirs = tmp_path / f"ours{index}.gguf", tmp_path / f"theirs{index}.gguf"
        try:
            quantize_with_llama_cpp(source, theirs, file_type)
        except QuantizeError:
            with pytest.raises(QuantizeError, match="float16's range|NaN or infinite"):
                quantize_model(source, ours, file_type, progress=False)
            rejected_by_both.append(case)
            continue
        quantize_model(source, ours, file_type, progress=False)
        assert compare_blocks(ours, theirs).files_identical, case
    print(f"\n{file_type}: rejected by both quantizers: {rejected_by_both}")
    assert "zeros" not in rejected_by_both


def test_non_finite_weights_name_file_and_tensor(tmp_path):
    rows = np.zeros((2, 256), dtype=np.float32)
    rows[1, 7] = np.nan
    source = write_tiny_model(tmp_path / "nan.gguf", rows)
    output = tmp_path / "out.gguf"
    with pytest.raises(QuantizeError) as raised:
        quantize_model(source, output, "Q4_K_M", progress=False)
    message = str(raised.value)
    assert str(source) in message
    assert "blk.0.attn_q.weight" in message
    assert "NaN or infinite" in message
    assert not output.exists()
    assert not output.with_name("out.gguf.partial").exists()
    with pytest.raises(QuantizeError):            # llama.cpp rejects the file as well
        quantize_with_llama_cpp(source, tmp_path / "theirs.gguf", "Q4_K_M")


def test_scale_overflow_is_rejected(tmp_path):
    rows = np.full((2, 256), 1e30, dtype=np.float32)
    source = write_tiny_model(tmp_path / "huge.gguf", rows)
    with pytest.raises(QuantizeError, match="float16's range"):
        quantize_model(source, tmp_path / "out.gguf", "Q8_0", progress=False)


def test_requantize_needs_permission(tmp_path):
    with pytest.raises(QuantizeError) as raised:
        quantize_model(assets.model_path("smollm2"), tmp_path / "out.gguf", "Q8_0", progress=False)
    message = str(raised.value)
    assert "already Q4_1" in message
    assert "--allow-requantize" in message


def test_output_must_differ_from_input(tmp_path):
    source = write_tiny_model(tmp_path / "tiny.gguf", np.ones((2, 256), dtype=np.float32))
    with pytest.raises(QuantizeError, match="overwrite the input"):
        quantize_model(source, source, "Q8_0", progress=False)


def test_progress_bar_is_shown(tmp_path, capfd):
    source = write_tiny_model(tmp_path / "tiny.gguf", np.ones((2, 256), dtype=np.float32))
    quantize_model(source, tmp_path / "out.gguf", "Q8_0", progress=True)
    assert "weights" in capfd.readouterr().err


def test_result_reports_types_and_size(tmp_path):
    source = write_tiny_model(tmp_path / "tiny.gguf", np.ones((2, 256), dtype=np.float32))
    result = quantize_model(source, tmp_path / "out.gguf", "Q4_K_M", progress=False)
    assert result.type_counts == {"Q4_K": 1, "Q6_K": 3, "F32": 1}   # tied embeddings get Q6_K
    assert result.output_bytes == (tmp_path / "out.gguf").stat().st_size
    assert result.n_elements == 16 * 256 + 256 + 2 * 256 + 2 * 256 + 8 * 256
