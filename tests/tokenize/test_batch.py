"""Batching: BOS/EOS, truncation, padding side and length, attention mask; ids worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.tokenize import TokenizerError, Vocabulary, load_vocabulary
from labkit.tokenize.batch import encode_batch
from labkit.tokenize.pretokenize import GPT2_SPLIT_PATTERN

BOS, EOS, PAD = 256, 257, 258


@pytest.fixture(scope="module")
def byte_vocab() -> Vocabulary:
    # Bytes only, so every character of ASCII text is its own id ("H" = 72, "i" = 105).
    specials = {"<s>": BOS, "</s>": EOS, "<pad>": PAD, "<unk>": 259}
    roles = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}
    return Vocabulary("bytes", {bytes([b]): b for b in range(256)}, (GPT2_SPLIT_PATTERN,),
                      special_tokens=specials, roles=roles)


def test_right_padding_to_longest(byte_vocab):
    batch = encode_batch(byte_vocab, ["Hi", "Hey!"])
    assert batch.input_ids.tolist() == [[BOS, 72, 105, PAD, PAD], [BOS, 72, 101, 121, 33]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch.input_ids.dtype == np.int64
    assert batch.attention_mask.dtype == np.int64
    assert batch.lengths == [3, 5]


def test_left_padding_puts_last_token_in_last_column(byte_vocab):
    batch = encode_batch(byte_vocab, ["Hi", "Hey!"], padding_side="left", add_eos=True)
    assert batch.input_ids.tolist() == [[PAD, PAD, BOS, 72, 105, EOS], [BOS, 72, 101, 121, 33, EOS]]
    assert batch.attention_mask.tolist() == [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]


def test_fixed_length_padding(byte_vocab):
    batch = encode_batch(byte_vocab, ["a"], padding="max_length", max_length=4, add_bos=False)
    assert batch.input_ids.tolist() == [[97, PAD, PAD, PAD]]
    assert batch.attention_mask.tolist() == [[1, 0, 0, 0]]


def test_truncation_keeps_bos_and_eos(byte_vocab):
    batch = encode_batch(byte_vocab, ["abcdef", "ab"], max_length=5, add_eos=True)
    assert batch.input_ids.tolist() == [[BOS, 97, 98, 99, EOS], [BOS, 97, 98, EOS, PAD]]
    assert batch.truncated == [True, False]


def test_left_truncation_keeps_the_end(byte_vocab):
    batch = encode_batch(byte_vocab, ["abcdef"], max_length=4, truncation_side="left")
    assert batch.input_ids.tolist() == [[BOS, 100, 101, 102]]


def test_no_padding_requires_equal_lengths(byte_vocab):
    assert encode_batch(byte_vocab, ["ab", "cd"], padding="none").input_ids.shape == (2, 3)
    with pytest.raises(TokenizerError, match="padding='none'"):
        encode_batch(byte_vocab, ["ab", "c"], padding="none")


def test_special_strings_in_batch_are_text_by_default(byte_vocab):
    batch = encode_batch(byte_vocab, ["</s>"], add_bos=False)
    assert EOS not in batch.input_ids.tolist()[0]
    allowed = encode_batch(byte_vocab, ["</s>"], add_bos=False, allowed_special={"</s>"})
    assert allowed.input_ids.tolist() == [[EOS]]


def test_empty_inputs(byte_vocab):
    assert encode_batch(byte_vocab, []).input_ids.shape == (0, 0)
    batch = encode_batch(byte_vocab, ["", "a"], add_bos=False)
    assert batch.input_ids.tolist() == [[PAD], [97]]
    assert batch.attention_mask.tolist() == [[0], [1]]


@pytest.mark.parametrize("options, message", [
    ({"padding": "max_length"}, "needs max_length"),
    ({"max_length": 0}, "positive integer"),
    ({"max_length": 1, "add_eos": True}, "no room"),
    ({"padding_side": "middle"}, "padding_side"),
    ({"truncation_side": "up"}, "truncation_side"),
])
def test_invalid_options(byte_vocab, options, message):
    with pytest.raises(TokenizerError, match=message):
        encode_batch(byte_vocab, ["abc", "a"], **options)


def test_single_string_is_rejected(byte_vocab):
    with pytest.raises(TokenizerError, match="wrap a single text"):
        encode_batch(byte_vocab, "abc")


def test_missing_pad_token_names_the_fix():
    # Llama 3 defines no PAD token; the caller must choose one.
    llama3 = load_vocabulary("llama-bpe")
    with pytest.raises(TokenizerError, match="pad_id"):
        encode_batch(llama3, ["Hello", "Hello world"])
    batch = encode_batch(llama3, ["Hello", "Hello world"], pad_id=llama3.eos_id)
    assert batch.input_ids.tolist() == [[128000, 9906, 128001], [128000, 9906, 1917]]


def test_sentencepiece_batch():
    # Llama 2: BOS 1, and its GGUF names no PAD either; ids from llama.cpp's llama-spm vectors.
    vocab = load_vocabulary("llama-spm")
    batch = encode_batch(vocab, ["Hello world", "Hello"], pad_id=0, padding_side="left")
    assert batch.input_ids.tolist() == [[1, 15043, 3186], [0, 1, 15043]]
