"""Decoding: the UTF-8 policy, bad ids, special tokens, and streaming without half characters."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.tokenize import IncrementalDecoder, TokenizerError, load_vocabulary

from .conftest import SAMPLE_TEXTS


def test_partial_character_becomes_replacement(gpt2):
    ids = gpt2.encode("😀")
    assert len(ids) > 1  # GPT-2 spells this emoji with several byte tokens
    assert gpt2.decode(ids[:1]) == "\ufffd"
    assert gpt2.decode_bytes(ids[:1]) == "😀".encode("utf-8")[:len(gpt2.token_bytes(ids[0]))]


def test_strict_decoding_raises_with_position(gpt2):
    ids = gpt2.encode("a😀")
    with pytest.raises(TokenizerError, match="not valid UTF-8"):
        gpt2.decode(ids[:2], errors="strict")


def test_unknown_error_handler(gpt2):
    # Checked up front, even when the bytes are valid and the handler would never run.
    with pytest.raises(TokenizerError, match="error handler"):
        gpt2.decode([1], errors="no-such-handler")


@pytest.mark.parametrize("bad", [[50257], [-1], [10**12], [1, 2, 99999999]])
def test_out_of_range_ids_raise(gpt2, bad):
    with pytest.raises(TokenizerError, match="out of range"):
        gpt2.decode(bad)


@pytest.mark.parametrize("bad", [[1.5], ["7"], [None]])
def test_non_integer_ids_raise(gpt2, bad):
    with pytest.raises(TokenizerError, match="not an integer"):
        gpt2.decode(bad)


def test_numpy_ids_decode(gpt2):
    ids = np.array(gpt2.encode("Hello world"), dtype=np.int64)
    assert gpt2.decode(ids) == "Hello world"


def test_empty_ids_decode_to_empty(gpt2, cl100k):
    assert gpt2.decode([]) == ""
    assert load_vocabulary("llama-spm").decode([]) == ""


def test_special_tokens_decode_to_their_text(gpt2):
    assert gpt2.decode([50256]) == "<|endoftext|>"
    assert gpt2.decode([15496, 50256], skip_special_tokens=True) == "Hello"


def test_llama_cpp_out_of_range():
    vocab = load_vocabulary("llama-spm")
    with pytest.raises(TokenizerError, match="out of range"):
        vocab.decode([32000])
    with pytest.raises(TokenizerError, match="out of range"):
        vocab.decode([-5])


def test_token_pieces_are_readable(gpt2):
    ids = gpt2.encode("a😀")
    pieces = gpt2.token_pieces(ids)
    assert pieces[0] == "a"
    assert "\\x" in "".join(pieces[1:])  # partial UTF-8 shows as \xNN, not as U+FFFD


@pytest.mark.parametrize("text", SAMPLE_TEXTS)
def test_streaming_never_emits_half_a_character(gpt2, text):
    decoder = IncrementalDecoder()
    emitted = []
    for token_id in gpt2.encode(text):
        emitted.append(decoder.decode(gpt2.token_bytes(token_id)))
    emitted.append(decoder.flush())
    assert "".join(emitted) == text
    assert all("\ufffd" not in piece for piece in emitted)


def test_streaming_holds_back_incomplete_bytes():
    decoder = IncrementalDecoder()
    assert decoder.decode(b"caf\xc3") == "caf"
    assert decoder.pending == b"\xc3"
    assert decoder.decode(b"\xa9") == "é"
    assert decoder.pending == b""


def test_streaming_policy_for_invalid_bytes():
    decoder = IncrementalDecoder()
    assert decoder.decode(b"a\xffb") == "a\ufffdb"  # can never start a character: replaced at once
    assert decoder.decode(b"\xe2\x82") == ""        # may still complete
    assert decoder.flush() == "\ufffd"              # never completed: one replacement at the end
    assert decoder.decode(b"ok") == "ok"            # flush resets the decoder
