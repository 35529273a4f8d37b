"""``labkit inspect`` and ``labkit quantize`` from the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from labkit import assets
from labkit.cli import main
from labkit.quantize.gguf_file import read_gguf


@pytest.fixture
def tiny_model(tmp_path):
    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(path, arch="llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.ones((8, 256), dtype=np.float16))
    writer.add_tensor("blk.0.ffn_down.weight", np.linspace(-1, 1, 512, dtype=np.float32).reshape(2, 256))
    writer.add_tensor("output_norm.weight", np.ones(256, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_inspect_real_model(capsys):
    path = assets.model_path("smollm2")
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    # labkit's reader is checked against gguf-py's in test_gguf_file.py; gguf-py takes 15 s here.
    model = read_gguf(path)
    n_weights = sum(math.prod(t.shape) for t in model.tensors)
    n_bytes = sum(t.n_bytes for t in model.tensors)
    assert f"{len(model.tensors)} tensors" in out
    assert f"{8 * n_bytes / n_weights:.2f} bits per weight" in out
    assert "general.architecture" in out
    assert "'llama'" in out
    assert "[49152 x STRING]" in out
    assert "blk.0.attn_q.weight" in out
    assert "Q4_1" in out


def test_inspect_tensor_table(tiny_model, capsys):
    assert main(["inspect", str(tiny_model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("blk.0.ffn_down.weight"))
    assert row.split() == ["blk.0.ffn_down.weight", "F32", "2", "x", "256", "2,048", "32"]
    assert any(line.split()[:2] == ["F16", "1"] for line in lines)


def test_inspect_without_tensor_table(tiny_model, capsys):
    assert main(["inspect", str(tiny_model), "--no-tensors"]) == 0
    assert "blk.0.ffn_down.weight" not in capsys.readouterr().out


def test_inspect_broken_file(tmp_path, capsys):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labkit inspect: ")
    assert str(path) in err
    assert "truncated" in err
    assert "Traceback" not in err


def test_quantize_command(tiny_model, tmp_path, capsys):
    output = tmp_path / "out.gguf"
    assert main(["quantize", str(tiny_model), str(output), "--type", "Q4_K_M", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {output}" in out
    assert "bits per weight" in out
    types = {t.name: t.tensor_type.name for t in GGUFReader(output).tensors}
    assert types == {"token_embd.weight": "Q6_K", "blk.0.ffn_down.weight": "Q6_K",
                     "output_norm.weight": "F32"}


def test_quantize_command_bad_input(tmp_path, capsys):
    path = tmp_path / "not-a-model.gguf"
    path.write_text("hello")
    assert main(["quantize", str(path), str(tmp_path / "o.gguf"), "--type", "Q8_0"]) == 2
    err = capsys.readouterr().err
    assert "not a GGUF file" in err
    assert str(path) in err


def test_quantize_command_requires_type(tiny_model, tmp_path):
    with pytest.raises(SystemExit):
        main(["quantize", str(tiny_model), str(tmp_path / "o.gguf")])
