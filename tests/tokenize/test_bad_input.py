"""Bad input: empty text, lone surrogates, a megabyte of one character, wrong types, corrupt GGUF files."""

from __future__ import annotations

import random
import shutil

import pytest

from labkit import assets
from labkit.tokenize import TokenizerError, load_vocabulary
from labkit.tokenize.gguf_metadata import read_gguf_metadata
from labkit.tokenize import llama_cpp_vocab

MEGABYTE = 1_000_000
VOCABULARIES = ["cl100k", "gpt-2", "llama-bpe", "llama-spm", "gemma3-270m"]


@pytest.mark.parametrize("name", VOCABULARIES)
def test_empty_text(name):
    vocab = load_vocabulary(name)
    assert vocab.encode("") == []
    assert vocab.encode("", allowed_special="all") == []
    assert vocab.decode([]) == ""


def test_lone_surrogates_match_tiktoken(cl100k, cl100k_encoding, backend):
    vocab = cl100k if backend == "tiktoken" else cl100k.with_backend(backend)
    for text in ["a\ud800b", "\udfff", "x\ud83d\ude00y", "end\ud83d"]:
        assert vocab.encode(text) == cl100k_encoding.encode_ordinary(text)
    # A valid surrogate pair is the character it stands for; a lone one is U+FFFD.
    assert vocab.encode("\ud83d\ude00") == vocab.encode("😀")
    assert vocab.encode("\ud800") == vocab.encode("\ufffd")


def test_lone_surrogates_sentencepiece():
    vocab = load_vocabulary("llama-spm")
    assert vocab.encode("a\ud800b") == vocab.encode("a\ufffdb")


@pytest.mark.parametrize("name", ["gpt-2", "llama-spm"])
def test_text_must_be_str(name):
    vocab = load_vocabulary(name)
    with pytest.raises(TokenizerError, match="must be a str"):
        vocab.encode(b"bytes")
    with pytest.raises(TokenizerError, match="must be a str"):
        vocab.encode_ordinary(None)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("character", ["a", " ", "\n", "é", "😀", "\x01"])
def test_megabyte_of_one_character_fast_path(cl100k, cl100k_encoding, character):
    text = character * (MEGABYTE // len(character.encode("utf-8")))
    assert cl100k.encode(text) == cl100k_encoding.encode_ordinary(text)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("character", ["a", " ", "😀"])
def test_long_run_readable_path(cl100k, cl100k_encoding, character):
    # The readable encoder is O(n log n) in a chunk's length; 100 kB keeps the test short.
    text = character * (100_000 // len(character.encode("utf-8")))
    assert cl100k.with_backend("python").encode(text) == cl100k_encoding.encode_ordinary(text)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["llama-spm", "gemma3-270m"])
@pytest.mark.parametrize("character", ["\U0001d518", "\x01"])
def test_megabyte_sentencepiece_byte_fallback(name, character):
    # Characters outside the vocabulary fall back to byte tokens: one id per UTF-8 byte.
    vocab = load_vocabulary(name)
    text = character * (MEGABYTE // len(character.encode("utf-8")))
    ids = vocab.encode(text)
    prefix = 1 if vocab.add_space_prefix else 0
    assert len(ids) == MEGABYTE + prefix
    assert vocab.decode(ids) == text


@pytest.mark.parametrize("name", ["llama-spm", "gemma3-270m"])
def test_sentencepiece_cuts_keep_ids(name, monkeypatch):
    # Long texts go to llama.cpp in pieces; with a tiny cut length the ids must equal one whole call.
    vocab = load_vocabulary(name)
    rng = random.Random(0)
    alphabet = ["a", "b", " ", "  ", "\U0001d518", "\x01", "é", "\n", "😀", "xyz ", "the "]
    text = "".join(rng.choice(alphabet) for _ in range(3000))
    assert len(text) < llama_cpp_vocab.LONG_TEXT
    whole = vocab.encode(text)
    monkeypatch.setattr(llama_cpp_vocab, "LONG_TEXT", 50)
    assert len(vocab._cut_long_text(text)) > 20
    assert vocab.encode(text) == whole
    assert vocab.decode(whole) == text


@pytest.fixture
def vocab_copy(tmp_path):
    target = tmp_path / "copy.gguf"
    shutil.copyfile(assets.llama_vocab_path("gpt-2"), target)
    return target


def test_truncated_gguf(vocab_copy):
    data = vocab_copy.read_bytes()
    vocab_copy.write_bytes(data[: len(data) // 3])
    with pytest.raises(TokenizerError, match="runs past the end"):
        load_vocabulary(str(vocab_copy))


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"NOPE" + bytes(100), "starts with b'NOPE'"),
    (b"GGUF" + (99).to_bytes(4, "little") + bytes(16), "version 99"),
    (b"GGUF" + (3).to_bytes(4, "little") + bytes(8) + (1).to_bytes(8, "little") + (10**15).to_bytes(8, "little"),
     "runs past the end"),
])
def test_corrupt_gguf_headers(tmp_path, content, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(TokenizerError, match=message):
        read_gguf_metadata(path)
    with pytest.raises(TokenizerError):
        load_vocabulary(str(path))


def test_gguf_with_huge_array_count(tmp_path):
    # key "k", type ARRAY (9) of UINT8 (0) claiming 2**60 items: rejected before allocating.
    header = b"GGUF" + (3).to_bytes(4, "little") + bytes(8) + (1).to_bytes(8, "little")
    field = (1).to_bytes(8, "little") + b"k" + (9).to_bytes(4, "little") + (0).to_bytes(4, "little")
    path = tmp_path / "huge.gguf"
    path.write_bytes(header + field + (2**60).to_bytes(8, "little"))
    with pytest.raises(TokenizerError, match="claims"):
        read_gguf_metadata(path)


def test_gguf_without_tokenizer(tmp_path):
    header = b"GGUF" + (3).to_bytes(4, "little") + bytes(8) + bytes(8)
    path = tmp_path / "empty.gguf"
    path.write_bytes(header)
    with pytest.raises(TokenizerError, match="contains no tokenizer"):
        load_vocabulary(str(path))


def test_missing_paths_and_names(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        load_vocabulary(str(tmp_path / "missing.gguf"))
    with pytest.raises(TokenizerError, match="unknown vocabulary 'no-such'"):
        load_vocabulary("no-such")
    with pytest.raises(TokenizerError, match="folder"):
        read_gguf_metadata(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_megabyte_of_spaces_gpt2_pattern():
    # tiktoken's regex engine overflows its stack on this input with the GPT-2 pattern; the
    # encoder falls back to the readable path. GPT-2's vocabulary has no token for two spaces,
    # so every space is token 220, as in llama.cpp's vectors for "  " and "   ".
    ids = load_vocabulary("gpt-2").encode(" " * MEGABYTE)
    assert len(ids) == MEGABYTE
    assert set(ids) == {220}
