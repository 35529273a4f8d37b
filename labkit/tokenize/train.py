"""Train a byte-level BPE vocabulary: count pairs once, then update the counts after each merge.

Training starts from the 256 single bytes and repeatedly adds the most frequent adjacent pair of
tokens as a new token (a *merge*), until the vocabulary reaches ``vocab_size``. Text is first cut
into pre-token chunks (:mod:`labkit.tokenize.pretokenize`), and pairs never cross a chunk boundary.

>>> vocab = train_bpe("aaabdaaabac", 256 + 3, special_tokens=None, pattern=r"\\S+", progress=False)
>>> [vocab.token_bytes(i) for i in range(256, 259)]
[b'aa', b'ab', b'aaab']

Two things keep it fast where a textbook loop (recount every pair after every merge, as minbpe
does) is slow:

1. each distinct chunk is stored once with its number of occurrences, so " the" seen 5 000 times
   is one word of weight 5 000;
2. after a merge only the words that contain the merged pair are rewritten, so only the pair
   counts of those words change. The counts wait in a heap for the next maximum.

Tie-breaking makes the same corpus always give the same vocabulary. The pair with the highest
count wins. Among equal counts the pair with the smaller left token id wins, then the one with the
smaller right id. Ids of bytes are their values and merged tokens get increasing ids, so older
tokens win. Pairs that occur once are merged too, and training stops early, with a warning, only
when no pair is left at all.

The vocabulary size counts everything: 256 bytes + merges + special tokens, which take the last ids.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, defaultdict
from typing import Iterable

# Plain tqdm: tqdm.auto warns in notebooks without ipywidgets, and the text bar works everywhere.
from tqdm import tqdm

from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.pretokenize import (
    CL100K_SPLIT_PATTERN,
    GAP_FREE_PATTERNS,
    GPT2_SPLIT_PATTERN,
    compile_pattern,
    split_text,
)
from labkit.tokenize.specials import SpecialTokenNames
from labkit.tokenize.vocabulary import Vocabulary, replace_lone_surrogates

log = logging.getLogger(__name__)

NAMED_PATTERNS = {"gpt2": GPT2_SPLIT_PATTERN, "cl100k": CL100K_SPLIT_PATTERN}
Pair = tuple[int, int]


def count_chunks(documents: Iterable[str], pattern: str) -> Counter[bytes]:
    """Return how often each pre-token chunk occurs, as UTF-8 bytes (documents are split separately).

    >>> count_chunks(["the cat, the hat"], GPT2_SPLIT_PATTERN)[b" the"]
    1
    """
    counts: Counter[str] = Counter()
    if pattern in GAP_FREE_PATTERNS:
        # Every character is in some match, so findall (one call into C) loses nothing.
        find_all = compile_pattern(pattern).findall
        for document in documents:
            counts.update(find_all(document))
    else:
        for document in documents:
            counts.update(split_text(document, (pattern,)))
    chunks: Counter[bytes] = Counter()
    for chunk, count in counts.items():
        try:
            chunks[chunk.encode("utf-8")] += count
        except UnicodeEncodeError:
            chunks[replace_lone_surrogates(chunk).encode("utf-8")] += count
    return chunks


class PairCounts:
    """Weighted counts of adjacent token pairs over distinct words, with the words that hold each pair."""

    def __init__(self, words: list[list[int]], weights: list[int]):
        self.words = words
        self.weights = weights
        self.count: dict[Pair, int] = defaultdict(int)
        self.holders: dict[Pair, set[int]] = defaultdict(set)
        for index, word in enumerate(words):
            for pair in zip(word, word[1:]):
                self.count[pair] += weights[index]
                self.holders[pair].add(index)
        # Max-heap through negated counts; (left, right) after the count is the tie-break.
        self.heap = [(-count, pair) for pair, count in self.count.items()]
        heapq.heapify(self.heap)

    def pop_best(self) -> Pair | None:
        """Return the pair with the highest current count (ties: smaller ids), or None if none is left."""
        while self.heap:
            negative_count, pair = heapq.heappop(self.heap)
            if self.count.get(pair) == -negative_count and negative_count < 0:
                return pair
            # Otherwise the entry is stale: the count changed after it was pushed.
        return None

    def merge(self, pair: Pair, new_id: int) -> None:
        """Replace ``pair`` by ``new_id`` in every word that contains it and update the affected counts."""
        left, right = pair
        changed: dict[Pair, int] = defaultdict(int)
        for index in self.holders.pop(pair, ()):
            old = self.words[index]
            new = _merge_word(old, left, right, new_id)
            if len(new) == len(old):
                continue  # the word lost this pair in an earlier merge
            weight = self.weights[index]
            for old_pair in zip(old, old[1:]):
                changed[old_pair] -= weight
            for new_pair in zip(new, new[1:]):
                changed[new_pair] += weight
                self.holders[new_pair].add(index)
            self.words[index] = new

        for changed_pair, delta in changed.items():
            if delta == 0:
                continue
            count = self.count[changed_pair] + delta
            if count > 0:
                self.count[changed_pair] = count
                heapq.heappush(self.heap, (-count, changed_pair))
            else:
                del self.count[changed_pair]
        self.count.pop(pair, None)


def _merge_word(word: list[int], left: int, right: int, new_id: int) -> list[int]:
    """Replace each non-overlapping occurrence of (left, right), scanning left to right.

    >>> _merge_word([1, 1, 1, 2], 1, 1, 9)
    [9, 1, 2]
    """
    merged = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
            merged.append(new_id)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return merged


def train_bpe(
    text: str | Iterable[str],
    vocab_size: int,
    *,
    pattern: str = "gpt2",
    special_tokens: SpecialTokenNames | None = SpecialTokenNames(),
    name: str = "trained-bpe",
    progress: bool = True,
) -> Vocabulary:
    """Train a byte-level BPE vocabulary of ``vocab_size`` ids on ``text`` (a string or documents).

    ``pattern`` is ``"gpt2"``, ``"cl100k"`` or a regular expression for the ``regex`` module.
    ``special_tokens`` names BOS, EOS, PAD and UNK (None for no special tokens); they take the
    last four ids. ``progress`` shows a tqdm bar over the merges.
    """
    split_pattern = NAMED_PATTERNS.get(pattern, pattern)
    specials = special_tokens.roles() if special_tokens is not None else {}
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 256 + len(specials):
        raise TokenizerError(f"vocab_size={vocab_size!r} is too small: it must hold the 256 byte tokens and "
                             f"{len(specials)} special tokens, so it must be at least {256 + len(specials)}")
    n_merges = vocab_size - 256 - len(specials)
    documents = [text] if isinstance(text, str) else list(text)
    if any(not isinstance(d, str) for d in documents):
        raise TokenizerError("training text must be a str or an iterable of str")

    # Step 1: distinct chunks with their counts; every chunk starts as its bytes.
    chunks = count_chunks(documents, split_pattern)
    log.info("training BPE: %d chunks (%d distinct), %d merges to learn",
             sum(chunks.values()), len(chunks), n_merges)
    pairs = PairCounts([list(chunk) for chunk in chunks], list(chunks.values()))
    token_bytes = [bytes([b]) for b in range(256)]

    # Step 2: merge the best pair until the vocabulary is full or no pair is left. Two different
    # pairs can spell the same bytes ("ab"+"c" and "a"+"bc"). The second one reuses the first
    # one's id, because encoding identifies a token by its bytes.
    token_ids = {token: token_id for token_id, token in enumerate(token_bytes)}
    target = 256 + n_merges
    with tqdm(total=n_merges, desc=f"BPE {name}", unit="merge", disable=not progress, leave=False) as bar:
        while len(token_bytes) < target:
            best = pairs.pop_best()
            if best is None:
                log.warning("the corpus ran out of pairs after %d merges; the vocabulary has %d ids, "
                            "not %d", len(token_bytes) - 256, len(token_bytes) + len(specials), vocab_size)
                break
            merged = token_bytes[best[0]] + token_bytes[best[1]]
            merged_id = token_ids.get(merged)
            if merged_id is None:
                merged_id = len(token_bytes)
                token_bytes.append(merged)
                token_ids[merged] = merged_id
                bar.update(1)
            pairs.merge(best, merged_id)

    # Step 3: ranks = ids; special tokens take the ids after the last merge.
    special_ids = {string: len(token_bytes) + i for i, string in enumerate(specials.values())}
    return Vocabulary(name, token_ids, (split_pattern,), special_tokens=special_ids, roles=specials)
