"""The ``labkit tokenize`` command: ids and pieces, JSON, training to a file, clear errors."""

from __future__ import annotations

import io
import json

import pydoc_data.topics

from labkit import assets
from labkit.cli import main
from labkit.tokenize import load_vocabulary
from labkit.tokenize.gguf_metadata import read_gguf_metadata


def test_json_output_matches_llama_cpp_vector(capsys):
    # "Hello world" in Llama 3 is [9906, 1917] in llama.cpp's llama-bpe vectors.
    assert main(["tokenize", "--vocab", "llama-bpe", "--json", "Hello world"]) == 0
    assert json.loads(capsys.readouterr().out) == {"vocabulary": "llama-bpe", "n_tokens": 2, "ids": [9906, 1917]}


def test_table_shows_pieces(capsys):
    # "Hello world" is [15496, 995] in llama.cpp's gpt-2 vectors.
    assert main(["tokenize", "--vocab", "gpt-2", "Hello", "world"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "gpt-2: 2 tokens, 11 bytes"
    assert lines[1].split() == ["15496", "'Hello'"]
    assert lines[2].split(maxsplit=1) == ["995", "' world'"]


def test_special_tokens_need_the_flag(capsys):
    main(["tokenize", "--vocab", "gpt-2", "--json", "<|endoftext|>"])
    assert 50256 not in json.loads(capsys.readouterr().out)["ids"]
    main(["tokenize", "--vocab", "gpt-2", "--json", "--allow-special", "<|endoftext|>"])
    assert json.loads(capsys.readouterr().out)["ids"] == [50256]


def test_reads_standard_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello world"))
    assert main(["tokenize", "--vocab", "cl100k", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [9906, 1917]


def test_sentencepiece_vocabulary(capsys):
    assert main(["tokenize", "--vocab", "llama-spm", "--json", "Hello world"]) == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [15043, 3186]


def test_train_then_tokenize(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(list(pydoc_data.topics.topics.values())[:10]), encoding="utf-8")
    out = tmp_path / "vocab.json"
    assert main(["tokenize", "train", str(corpus), "--vocab-size", "600", "--out", str(out)]) == 0
    assert "trained 600 tokens" in capsys.readouterr().out
    assert main(["tokenize", "--vocab", str(out), "--json", "the function"]) == 0
    ids = json.loads(capsys.readouterr().out)["ids"]
    assert ids == load_vocabulary(str(out)).encode("the function")
    assert len(ids) < len("the function")


def test_word_train_is_text_with_vocab(capsys):
    # With --vocab, "train" is text: one GPT-2 token, whose id we read from the GGUF token table.
    tokens = read_gguf_metadata(assets.llama_vocab_path("gpt-2"))["tokenizer.ggml.tokens"]
    assert main(["tokenize", "--vocab", "gpt-2", "--json", "train"]) == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [tokens.index("train")]


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    cases = [
        (["tokenize", "--vocab", "no-such-vocab", "x"], "unknown vocabulary"),
        (["tokenize", "x"], "--vocab"),
        (["tokenize", "--vocab", "gpt-2"], "give the text"),
        (["tokenize", "train"], "corpus file"),
        (["tokenize", "train", str(tmp_path / "missing.txt"), "--vocab-size", "300", "--out", "x.json"],
         "does not exist"),
        (["tokenize", "train", __file__, "--out", str(tmp_path / "v.json")], "--vocab-size"),
        (["tokenize", "train", __file__, "--vocab-size", "10", "--out", str(tmp_path / "v.json")], "too small"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_non_utf8_corpus(tmp_path, capsys):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("café".encode("latin-1"))
    assert main(["tokenize", "train", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "v.json")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
