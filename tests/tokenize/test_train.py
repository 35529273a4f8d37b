"""BPE training: hand-worked merges, equality with a recount-everything trainer, determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import regex

from labkit.tokenize import TokenizerError
from labkit.tokenize.pretokenize import CL100K_SPLIT_PATTERN, GPT2_SPLIT_PATTERN
from labkit.tokenize.train import train_bpe

from .conftest import SAMPLE_TEXTS, pydoc_paragraphs


def naive_train(documents: list[str], n_merges: int, pattern: str) -> list[bytes]:
    """Textbook BPE over every chunk occurrence, recounting all pairs after each merge.

    Same tie-break as labkit (highest count, then smallest left id, then smallest right id) and the
    same rule for a merge whose bytes already exist (reuse the id). Returns the new tokens in order.
    """
    chunks = [list(c.encode("utf-8")) for d in documents for c in regex.findall(pattern, d)]
    vocab = [bytes([b]) for b in range(256)]
    ids_of = {token: i for i, token in enumerate(vocab)}
    while len(vocab) < 256 + n_merges:
        counts = Counter(pair for chunk in chunks for pair in zip(chunk, chunk[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merged = vocab[best[0]] + vocab[best[1]]
        new_id = ids_of.setdefault(merged, len(vocab))
        if new_id == len(vocab):
            vocab.append(merged)
        for index, chunk in enumerate(chunks):
            out, i = [], 0
            while i < len(chunk):
                if i + 1 < len(chunk) and (chunk[i], chunk[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(chunk[i])
                    i += 1
            chunks[index] = out
    return vocab[256:]


def trained_tokens(vocab) -> list[bytes]:
    return [vocab.token_bytes(i) for i in range(256, vocab.n_vocab - len(vocab.special_tokens))]


def test_hand_worked_example():
    # aaabdaaabac: "aa" (4 times) first; then "ab" and "Za" tie at 2 and the smaller left id (a=97)
    # wins; then "aa"+"ab" = "aaab" (2 times).
    vocab = train_bpe("aaabdaaabac", 256 + 3, pattern=r"\S+", special_tokens=None, progress=False)
    assert trained_tokens(vocab) == [b"aa", b"ab", b"aaab"]
    assert vocab.encode("aaabdaaabac") == [258, 100, 258, 97, 99]


@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, CL100K_SPLIT_PATTERN])
def test_equals_recount_everything_training(pattern):
    documents = pydoc_paragraphs(25) + SAMPLE_TEXTS
    vocab = train_bpe(documents, 256 + 300, pattern=pattern, special_tokens=None, progress=False)
    assert trained_tokens(vocab) == naive_train(documents, 300, pattern)


def test_deterministic_under_document_order():
    documents = pydoc_paragraphs(30)
    first = train_bpe(documents, 600, progress=False)
    shuffled = documents[:]
    random.Random(0).shuffle(shuffled)
    second = train_bpe(shuffled, 600, progress=False)
    assert first.ranks == second.ranks


def test_vocab_size_counts_specials():
    vocab = train_bpe(pydoc_paragraphs(10), 300, progress=False)
    assert vocab.n_vocab == 300
    assert sorted(vocab.special_tokens.values()) == [296, 297, 298, 299]
    assert (vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.unk_id) == (296, 297, 298, 299)


def test_backends_agree_on_trained_vocabulary():
    vocab = train_bpe(pydoc_paragraphs(20), 1000, progress=False)
    reference = vocab.with_backend("python")
    for text in SAMPLE_TEXTS + pydoc_paragraphs(40)[20:]:
        assert vocab.encode(text) == reference.encode(text)
        assert vocab.decode(vocab.encode(text)) == text


def test_training_compresses_held_out_text():
    paragraphs = pydoc_paragraphs(40)
    vocab = train_bpe(paragraphs[:30], 1000, progress=False)
    held_out = "\n\n".join(paragraphs[30:])
    assert len(vocab.encode(held_out)) < len(held_out.encode("utf-8")) / 2


def test_corpus_running_out_of_pairs_stops_early(caplog):
    vocab = train_bpe("ab", 1000, special_tokens=None, pattern=r"\S+", progress=False)
    assert vocab.n_vocab == 257
    assert "ran out of pairs" in caplog.text


@pytest.mark.parametrize("size", [0, 259, "1000"])
def test_vocab_size_too_small_or_wrong_type(size):
    with pytest.raises(TokenizerError, match="vocab_size"):
        train_bpe("hello", size, progress=False)


def test_training_text_must_be_strings():
    with pytest.raises(TokenizerError, match="str"):
        train_bpe([b"bytes are not text"], 300, progress=False)


def test_empty_corpus_gives_bytes_only():
    vocab = train_bpe("", 300, progress=False)
    assert vocab.n_vocab == 256 + 4
    assert vocab.encode("hi") == [104, 105]
