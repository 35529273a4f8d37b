"""Byte-level BPE encoding through tiktoken's Rust core: same constructor, methods and ids as ReferenceBPE.

tiktoken builds an encoder from ranks we supply, fully offline, and merges by the rank of the
concatenated bytes exactly as :func:`labkit.tokenize.bpe.bpe_merge` does.

>>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257}
>>> TiktokenBPE(ranks, (r"\\S+|\\s+",)).encode_ordinary("abc ab")
[257, 32, 256]

tiktoken takes one split pattern and silently drops any text that the pattern does not match. So
tiktoken splits only with a last pattern known to match every character
(:data:`labkit.tokenize.pretokenize.GAP_FREE_PATTERNS`), inside the chunks that the earlier
patterns cut in Python. With any other pattern, Python cuts all chunks and tiktoken merges each
chunk whole.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import tiktoken

from labkit.tokenize.pretokenize import GAP_FREE_PATTERNS, split_text

# Split pattern that hands tiktoken the whole chunk as one piece.
WHOLE_CHUNK_PATTERN = r"[\s\S]+"


class TiktokenBPE:
    """Ordinary-text encoder backed by a ``tiktoken.Encoding`` built from ``ranks`` and ``patterns``."""

    def __init__(self, ranks: Mapping[bytes, int], patterns: Sequence[str], name: str = "labkit"):
        self.ranks = ranks
        self.patterns = tuple(patterns)
        if self.patterns[-1] in GAP_FREE_PATTERNS:
            self._outer_patterns, inner_pattern = self.patterns[:-1], self.patterns[-1]
        else:
            self._outer_patterns, inner_pattern = self.patterns, WHOLE_CHUNK_PATTERN
        self.encoding = tiktoken.Encoding(
            name=name,
            pat_str=inner_pattern,
            mergeable_ranks=dict(ranks),
            special_tokens={},
        )

    @classmethod
    def from_encoding(cls, encoding: tiktoken.Encoding) -> "TiktokenBPE":
        """Wrap an existing tiktoken encoding (its special tokens are handled by the caller)."""
        fast = cls.__new__(cls)
        fast.ranks = encoding._mergeable_ranks
        fast.patterns = (encoding._pat_str,)
        fast._outer_patterns = ()
        fast.encoding = encoding
        return fast

    def encode_ordinary(self, text: str) -> list[int]:
        """Return the ids of ``text``, special-token strings included as ordinary text."""
        try:
            if not self._outer_patterns:
                return self.encoding.encode_ordinary(text)
            chunks = split_text(text, self._outer_patterns)
            return list(itertools.chain.from_iterable(map(self.encoding.encode_ordinary, chunks)))
        except BaseException as error:
            # tiktoken 0.14's regex engine overflows its stack on some long runs (a megabyte of
            # spaces with the GPT-2 pattern) and raises a Rust panic, which derives from
            # BaseException. The readable encoder gives the same ids, only slower.
            if type(error).__name__ != "PanicException":
                raise
            return self._reference().encode_ordinary(text)

    def _reference(self):
        from labkit.tokenize.bpe import ReferenceBPE

        return ReferenceBPE(self.ranks, self.patterns)
