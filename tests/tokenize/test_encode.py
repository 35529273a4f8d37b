"""Encoding: the readable encoder and the tiktoken fast path against tiktoken's own ids."""

from __future__ import annotations

import pytest

from labkit.tokenize import Vocabulary
from labkit.tokenize.bpe import ReferenceBPE, bpe_merge
from labkit.tokenize.fast import TiktokenBPE
from labkit.tokenize.pretokenize import CL100K_SPLIT_PATTERN, LLAMA_CPP_PRE_TOKENIZERS

from .conftest import SAMPLE_TEXTS, pydoc_paragraphs

BYTES = {bytes([b]): b for b in range(256)}


def test_bpe_merge_hand_worked():
    # "abcab": "ab" (256) merges twice first, then "ab"+"c" is "abc" (257).
    ranks = BYTES | {b"ab": 256, b"abc": 257}
    assert bpe_merge(b"abcab", ranks) == [257, 256]


def test_bpe_merge_lowest_rank_first():
    # "bc" outranks "ab", so "abc" becomes a + bc even though "ab" comes first.
    ranks = BYTES | {b"bc": 256, b"ab": 257}
    assert bpe_merge(b"abc", ranks) == [97, 256]


def test_bpe_merge_ties_go_left():
    # Three a's with only "aa" known: the left pair merges, the last a stays alone.
    ranks = BYTES | {b"aa": 256}
    assert bpe_merge(b"aaa", ranks) == [256, 97]


def test_bpe_merge_whole_token_shortcut():
    ranks = BYTES | {b"xyz": 300}
    assert bpe_merge(b"xyz", ranks) == [300]


def test_bpe_merge_single_byte_and_empty():
    assert bpe_merge(b"a", BYTES) == [97]
    assert bpe_merge(b"", BYTES) == []


@pytest.mark.parametrize("encoder_class", [ReferenceBPE, TiktokenBPE])
def test_encoders_hand_worked(encoder_class):
    ranks = BYTES | {b"ab": 256, b"abc": 257, b" a": 258}
    encoder = encoder_class(ranks, (r"\S+|\s+",))
    assert encoder.encode_ordinary("abc ab") == [257, 32, 256]


@pytest.mark.parametrize("text", SAMPLE_TEXTS)
def test_cl100k_ids_equal_tiktoken(text, cl100k, backend, cl100k_encoding):
    vocab = cl100k.with_backend(backend) if backend != cl100k.backend else cl100k
    assert vocab.encode(text) == cl100k_encoding.encode_ordinary(text)


def test_cl100k_prose_equals_tiktoken(cl100k, cl100k_encoding):
    reference = cl100k.with_backend("python")
    for paragraph in pydoc_paragraphs(40):
        expected = cl100k_encoding.encode_ordinary(paragraph)
        assert cl100k.encode(paragraph) == expected
        assert reference.encode(paragraph) == expected


def test_rebuilt_cl100k_equals_tiktoken(cl100k_encoding):
    # Built from the ranks alone (not the imported Encoding), both backends give tiktoken's ids.
    ranks = cl100k_encoding._mergeable_ranks
    for backend in ("tiktoken", "python"):
        vocab = Vocabulary("cl100k-rebuilt", ranks, (CL100K_SPLIT_PATTERN,), backend=backend)
        for text in SAMPLE_TEXTS:
            assert vocab.encode(text) == cl100k_encoding.encode_ordinary(text)


@pytest.mark.parametrize("pre_tokenizer", ["starcoder", "falcon", "deepseek-llm", "default"])
def test_backends_agree_on_pattern_sequences(pre_tokenizer, cl100k_encoding):
    # Multi-pattern pre-tokenizers take the path where Python splits and tiktoken merges.
    patterns = LLAMA_CPP_PRE_TOKENIZERS[pre_tokenizer]
    ranks = cl100k_encoding._mergeable_ranks
    fast = TiktokenBPE(ranks, patterns)
    reference = ReferenceBPE(ranks, patterns)
    for text in SAMPLE_TEXTS + pydoc_paragraphs(5):
        assert fast.encode_ordinary(text) == reference.encode_ordinary(text)


def test_decode_inverts_encode(cl100k, gpt2):
    for vocab in (cl100k, gpt2):
        for text in SAMPLE_TEXTS:
            assert vocab.decode(vocab.encode(text)) == text


def test_export_to_tiktoken(gpt2):
    encoding = gpt2.to_tiktoken()
    for text in SAMPLE_TEXTS:
        assert encoding.encode_ordinary(text) == gpt2.encode(text)
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [50256]


def test_export_of_pattern_sequence_is_refused():
    from labkit.tokenize import TokenizerError, load_vocabulary

    with pytest.raises(TokenizerError, match="one"):
        load_vocabulary("starcoder").to_tiktoken()
