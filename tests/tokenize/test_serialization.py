"""Save/load: the readable format round-trips tokens and special tokens exactly; corrupt files fail clearly."""

from __future__ import annotations

import json

import pytest

from labkit.tokenize import SpecialTokenNames, TokenizerError, Vocabulary, load_vocabulary
from labkit.tokenize.pretokenize import CL100K_SPLIT_PATTERN
from labkit.tokenize.serialization import load_vocabulary_file, save_vocabulary, text_to_token, token_to_text
from labkit.tokenize.train import train_bpe

from .conftest import SAMPLE_TEXTS, pydoc_paragraphs


@pytest.fixture(scope="module")
def trained() -> Vocabulary:
    names = SpecialTokenNames(bos="<|bos|>", eos="<|eos|>", pad="<|pad|>", unk="<|unk|>")
    return train_bpe(pydoc_paragraphs(20) + SAMPLE_TEXTS, 800, pattern="cl100k", special_tokens=names,
                     name="round-trip", progress=False)


@pytest.mark.parametrize("token", [b"", b"plain", b" caf\xc3\xa9", b"\xe2\x80", b"a\\b", b"\\x41", b"\x00\n\t",
                                   bytes(range(256))])
def test_token_text_round_trip(token):
    assert text_to_token(token_to_text(token)) == token


def test_token_text_is_readable():
    assert token_to_text(b" the") == " the"
    assert token_to_text(b"\xe2\x80") == "\\xe2\\x80"
    assert token_to_text(b"\\") == "\\\\"


def test_round_trip_keeps_everything(trained, tmp_path):
    path = save_vocabulary(trained, tmp_path / "v.json")
    loaded = load_vocabulary_file(path)
    assert loaded.ranks == trained.ranks
    assert loaded.special_tokens == trained.special_tokens
    assert loaded.roles == trained.roles
    assert loaded.patterns == (CL100K_SPLIT_PATTERN,)
    assert loaded.name == "round-trip"
    for text in SAMPLE_TEXTS:
        assert loaded.encode(text) == trained.encode(text)
        assert loaded.encode(text, allowed_special="all") == trained.encode(text, allowed_special="all")


def test_file_is_one_token_per_line(trained, tmp_path):
    path = save_vocabulary(trained, tmp_path / "v.json")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert any(line.strip() == '[32, " "],' for line in lines)
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == "labkit-bpe"


def test_gguf_vocabulary_round_trip(tmp_path):
    # A real vocabulary with added tokens, extra tokens and many specials survives too.
    vocab = load_vocabulary("deepseek-coder")
    loaded = load_vocabulary(save_vocabulary(vocab, tmp_path / "deepseek.json"))
    assert loaded.added_tokens == vocab.added_tokens
    assert loaded.extra_tokens == vocab.extra_tokens
    assert loaded.n_vocab == vocab.n_vocab
    for text in SAMPLE_TEXTS + ["õ in text"]:
        assert loaded.encode(text) == vocab.encode(text)


def test_load_by_path_through_registry(trained, tmp_path):
    path = save_vocabulary(trained, tmp_path / "v.json")
    vocab = load_vocabulary(str(path))
    assert vocab.backend == "tiktoken"
    assert vocab.encode("Hello") == trained.encode("Hello")


def _write(tmp_path, content: str | bytes):
    path = tmp_path / "corrupt.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_truncated_file(trained, tmp_path):
    text = save_vocabulary(trained, tmp_path / "v.json").read_text(encoding="utf-8")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        load_vocabulary_file(_write(tmp_path, text[: len(text) // 2]))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other"), "not a labkit vocabulary"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(tokens="nope"), "'tokens' must be a list"),
    (lambda d: d["tokens"].append([0, "dup"]), "appears twice"),
    (lambda d: d["tokens"].append([5000, "a"]), "same bytes"),
    (lambda d: d["tokens"].append([5001, "bad \\q escape"]), "stray backslash"),
    (lambda d: d["tokens"].append(["x", "y"]), "must be \\[id, text\\]"),
    (lambda d: d.update(patterns=["(unclosed"]), "invalid split pattern"),
    (lambda d: d.update(patterns=[]), "non-empty list"),
    (lambda d: d["roles"].update(bos="<nope>"), "not one of the special tokens"),
    (lambda d: d["special_tokens"].update({"<x>": 0}), "used twice"),
])
def test_corrupt_fields(trained, tmp_path, change, message):
    document = json.loads(save_vocabulary(trained, tmp_path / "v.json").read_text(encoding="utf-8"))
    change(document)
    with pytest.raises(TokenizerError, match=message):
        load_vocabulary_file(_write(tmp_path, json.dumps(document)))


def test_binary_and_missing_files(tmp_path):
    with pytest.raises(TokenizerError, match="not UTF-8"):
        load_vocabulary_file(_write(tmp_path, b"\xff\xfe\x00garbage"))
    with pytest.raises(TokenizerError, match="does not exist"):
        load_vocabulary_file(tmp_path / "missing.json")


def test_only_byte_level_vocabularies_save(tmp_path):
    with pytest.raises(TokenizerError, match="GGUF"):
        save_vocabulary(load_vocabulary("llama-spm"), tmp_path / "spm.json")
