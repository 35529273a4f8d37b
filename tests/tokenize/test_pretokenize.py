"""Split patterns: the published GPT-2/cl100k patterns, sequences of patterns, nothing lost."""

from __future__ import annotations

import pytest
import regex
from tiktoken_ext.openai_public import r50k_pat_str

from labkit.tokenize.pretokenize import (
    CL100K_SPLIT_PATTERN,
    GAP_FREE_PATTERNS,
    GPT2_SPLIT_PATTERN,
    LLAMA_CPP_PRE_TOKENIZERS,
    llama_cpp_patterns,
    split_text,
    split_with_pattern,
)

from .conftest import SAMPLE_TEXTS


def test_cl100k_pattern_is_tiktokens(cl100k_encoding):
    assert CL100K_SPLIT_PATTERN == cl100k_encoding._pat_str


@pytest.mark.parametrize("text", SAMPLE_TEXTS)
def test_gpt2_pattern_splits_like_r50k(text):
    # tiktoken's r50k pattern is GPT-2's rewritten with possessive quantifiers: same chunks.
    assert split_text(text, (GPT2_SPLIT_PATTERN,)) == regex.findall(r50k_pat_str, text)


def test_gpt2_split_hand_worked():
    assert split_text("Hello world's 12345!", (GPT2_SPLIT_PATTERN,)) == ["Hello", " world", "'s", " 12345", "!"]


def test_cl100k_split_hand_worked():
    # Digits go in groups of three, and a space before digits is a chunk of its own.
    assert split_text("Hello world's 12345!", (CL100K_SPLIT_PATTERN,)) == [
        "Hello", " world", "'s", " ", "123", "45", "!"]


def test_split_keeps_text_between_matches():
    assert split_with_pattern("ab1c", r"\d") == ["ab", "1", "c"]


def test_pattern_sequence_splits_each_chunk():
    # StarCoder: digits first, then GPT-2's pattern inside each remaining chunk.
    assert split_text("ab12 cd", LLAMA_CPP_PRE_TOKENIZERS["starcoder"]) == ["ab", "1", "2", " cd"]


def test_split_of_empty_text_is_empty():
    assert split_text("", (GPT2_SPLIT_PATTERN,)) == []


@pytest.mark.parametrize("pre_tokenizer", sorted(LLAMA_CPP_PRE_TOKENIZERS))
def test_split_loses_no_text(pre_tokenizer):
    patterns = llama_cpp_patterns(pre_tokenizer)
    for text in SAMPLE_TEXTS:
        chunks = split_text(text, patterns)
        assert "".join(chunks) == text
        assert all(chunks)


@pytest.mark.parametrize("pattern", sorted(GAP_FREE_PATTERNS))
def test_gap_free_patterns_match_every_character(pattern):
    for text in SAMPLE_TEXTS:
        assert "".join(regex.findall(pattern, text)) == text


def test_unknown_pre_tokenizer_lists_supported_names():
    with pytest.raises(KeyError, match="llama-bpe"):
        llama_cpp_patterns("no-such-pre-tokenizer")


def test_invalid_pattern_raises_value_error():
    with pytest.raises(ValueError, match="invalid split pattern"):
        split_with_pattern("abc", r"(unclosed")
