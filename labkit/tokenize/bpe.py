"""Byte-level BPE encoding, the readable reference: split the text, then merge bytes by rank.

A vocabulary is a table ``ranks: {token bytes: rank}`` (the rank is also the token id). Encoding a
pre-token chunk starts from its single bytes and repeatedly merges the adjacent pair whose
concatenation has the lowest rank, until no adjacent pair is a token. This is tiktoken's rule;
Hugging Face and llama.cpp rank *pairs* by their merge list instead, which gives the same ids on
every vocabulary whose ids follow its merge order (all byte-level GGUF vocabularies checked here).

>>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257}
>>> bpe_merge(b"abcab", ranks)
[257, 256]
>>> ReferenceBPE(ranks, (r"\\S+|\\s+",)).encode_ordinary("abc ab")
[257, 32, 256]

:class:`labkit.tokenize.fast.TiktokenBPE` has the same constructor and methods and returns the same
ids through tiktoken's Rust core; the tests run both on every input.
"""

from __future__ import annotations

import heapq
from typing import Mapping, Sequence

from labkit.tokenize.pretokenize import split_text


def bpe_merge(piece: bytes, ranks: Mapping[bytes, int]) -> list[int]:
    """Encode one pre-token chunk: merge the lowest-rank adjacent pair until none is a token.

    Ties between equal ranks go to the leftmost pair, as in tiktoken and llama.cpp. The pairs wait
    in a heap and the parts form a linked list, so a chunk of n bytes costs O(n log n). A megabyte
    of one repeated character took 14-20 s on the 2-core course machine (cl100k ranks). Rescanning
    every pair after each merge would be quadratic, which is hours by estimate.
    """
    # Step 0: a chunk that is already a token needs no merging (tiktoken takes the same shortcut).
    if piece in ranks:
        return [ranks[piece]]

    # Step 1: one part per byte. Part i covers piece[start[i]:end[i]]; next/prev link the live parts.
    n = len(piece)
    start = list(range(n))
    end = list(range(1, n + 1))
    next_part = list(range(1, n + 1))       # n means "no next part"
    prev_part = list(range(-1, n - 1))      # -1 means "no previous part"
    alive = [True] * n

    # Step 2: every adjacent pair whose concatenation is a token goes into the heap as
    # (rank, left part). The left part's start never changes, so it orders ties left to right.
    heap: list[tuple[int, int, int]] = []

    def push_pair(left: int) -> None:
        if left < 0 or next_part[left] >= n:
            return
        right = next_part[left]
        rank = ranks.get(piece[start[left]:end[right]])
        if rank is not None:
            heapq.heappush(heap, (rank, left, end[right]))

    for i in range(n - 1):
        push_pair(i)

    # Step 3: pop the best pair and skip it if either side changed since it was pushed. Otherwise
    # merge the right part into the left one and push the two new neighbouring pairs.
    while heap:
        rank, left, pair_end = heapq.heappop(heap)
        right = next_part[left]
        if not alive[left] or right >= n or end[right] != pair_end:
            continue
        end[left] = end[right]
        alive[right] = False
        next_part[left] = next_part[right]
        if next_part[right] < n:
            prev_part[next_part[right]] = left
        push_pair(prev_part[left])
        push_pair(left)

    # Step 4: read the surviving parts left to right. A part that is not a token can only be a
    # single byte missing from the vocabulary; callers check for those bytes before encoding.
    ids = []
    part = 0
    while part < n:
        ids.append(ranks[piece[start[part]:end[part]]])
        part = next_part[part]
    return ids


class ReferenceBPE:
    """Pure-Python ordinary-text encoder (no special tokens) for ``ranks`` and split ``patterns``.

    >>> ranks = {bytes([b]): b for b in range(256)} | {b" t": 256}
    >>> ReferenceBPE(ranks, (r" ?\\w+|\\s+",)).encode_ordinary("a t")
    [97, 256]
    """

    def __init__(self, ranks: Mapping[bytes, int], patterns: Sequence[str]):
        self.ranks = ranks
        self.patterns = tuple(patterns)

    def encode_ordinary(self, text: str) -> list[int]:
        """Return the ids of ``text``: split it into chunks, then merge each chunk's UTF-8 bytes."""
        ids: list[int] = []
        for chunk in split_text(text, self.patterns):
            ids.extend(bpe_merge(chunk.encode("utf-8"), self.ranks))
        return ids
