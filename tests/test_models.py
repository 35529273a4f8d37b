"""Tests of labkit.models: loading the real SmolLM2 GGUF and the errors for bad model files."""

import pytest

from labkit import assets
from labkit.models import load_model


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2", n_ctx=512)


@pytest.mark.slow
def test_greedy_completion_repeats(smollm2):
    first = smollm2.create_completion("The capital of France is", max_tokens=8, temperature=0)
    second = smollm2.create_completion("The capital of France is", max_tokens=8, temperature=0)
    assert first["choices"][0]["text"] == second["choices"][0]["text"]
    assert first["usage"]["completion_tokens"] == 8
    assert "Paris" in first["choices"][0]["text"]


@pytest.mark.slow
def test_vocabulary_matches_gguf_metadata(smollm2):
    assert smollm2.n_vocab() == 49152
    assert smollm2.metadata["general.architecture"] == "llama"


def test_missing_model_gives_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    with pytest.raises(assets.AssetError, match="labkit assets fetch"):
        load_model("smollm2")


def test_nonexistent_path_is_clear(tmp_path):
    with pytest.raises(assets.AssetError, match="neither a course model"):
        load_model(tmp_path / "nope.gguf")


def test_invalid_gguf_is_clear(tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_text("this is not a model")
    with pytest.raises(assets.AssetError, match="not a valid GGUF"):
        load_model(fake)
