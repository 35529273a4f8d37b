"""Estimate token counts where no tokenizer is available, and measure how wrong estimates are.

Two estimators are common. The *character rule* divides the length of a text by four, the figure
usually quoted for English and GPT-style tokenizers. The *proxy* counts with a related tokenizer
that is available (cl100k for o200k models, Gemma's for Gemini). Neither can be checked against
the real tokenizer when it is not available. So :func:`measure_errors` checks both on tokenizers
we can count exactly. It treats one of them as unknown, estimates its counts and compares them
with the true counts, text kind by text kind (prose, code, mixed scripts, JSON).

>>> estimate_by_characters("Tokens are not words.")
6
>>> relative_error(estimate=110, truth=100)
0.1
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import statistics
from dataclasses import dataclass

from labkit import assets
from labkit.costs.counting import get_tokenizer

CHARS_PER_TOKEN = 4.0

# (proxy, truth) pairs. Their error measures how far a neighbouring tokenizer is from a real one.
# The pairs cover an older, smaller vocabulary of the same family (GPT-2 for cl100k, as cl100k is
# for o200k), a larger successor (Llama 3 for cl100k) and unrelated families of similar size.
PROXY_PAIRS = (
    ("gpt-2", "cl100k"),
    ("cl100k", "llama-bpe"),
    ("llama-bpe", "cl100k"),
    ("cl100k", "qwen2"),
    ("llama-spm", "gemma3-270m"),
    ("cl100k", "gemma3-270m"),
)


def estimate_by_characters(text: str, chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """Estimate a token count as characters / ``chars_per_token``, rounded up."""
    return math.ceil(len(text) / chars_per_token)


def relative_error(*, estimate: float, truth: float) -> float:
    """Return (estimate - truth) / truth: positive when the estimate is too high."""
    return (estimate - truth) / truth


def sample_texts(size: int = 6000) -> dict[str, str]:
    """Return texts of four kinds, about ``size`` characters each, all from offline sources.

    - prose: Python's own documentation (``pydoc_data.topics``)
    - code: the source of a standard library module (``argparse``)
    - mixed: llama.cpp's tokenizer test inputs (whitespace, emoji, Cyrillic, Khmer, Chinese,
      Vietnamese, numbers)
    - json: the price catalog as JSON records
    """
    import argparse
    from pydoc_data.topics import topics

    from labkit.costs.catalog import load_catalog

    prose = "\n\n".join(topics[key] for key in sorted(topics))
    code = inspect.getsource(argparse)
    mixed = "\n".join(text for text, _ in assets.llama_vocab_test_cases("llama-bpe"))
    records = json.dumps([dataclasses.asdict(price) for price in load_catalog()], indent=1)
    return {kind: text[:size] for kind, text in
            [("prose", prose), ("code", code), ("mixed", mixed), ("json", records)]}


@dataclass(frozen=True)
class ErrorRow:
    """One estimate checked against a true count."""

    method: str          # "chars/4" or "proxy <name>"
    truth_tokenizer: str
    kind: str
    estimate: int
    truth: int

    @property
    def error(self) -> float:
        return relative_error(estimate=self.estimate, truth=self.truth)


def measure_errors(texts: dict[str, str] | None = None, *,
                   tokenizers: tuple[str, ...] = ("cl100k", "llama-bpe", "llama-spm", "gemma3-270m",
                                                  "qwen2", "gpt-2"),
                   pairs: tuple[tuple[str, str], ...] = PROXY_PAIRS) -> list[ErrorRow]:
    """Check the character rule against each tokenizer and each proxy pair, on each kind of text."""
    texts = texts or sample_texts()
    counts = {(name, kind): len(get_tokenizer(name).encode(text))
              for name in set(tokenizers) | {n for pair in pairs for n in pair}
              for kind, text in texts.items()}
    rows = []
    for kind, text in texts.items():
        for name in tokenizers:
            rows.append(ErrorRow("chars/4", name, kind, estimate_by_characters(text),
                                 counts[(name, kind)]))
        for proxy, truth in pairs:
            rows.append(ErrorRow(f"proxy {proxy}", truth, kind, counts[(proxy, kind)],
                                 counts[(truth, kind)]))
    return rows


def summarize_errors(rows: list[ErrorRow]) -> dict[str, dict[str, float]]:
    """Return, per method, the median and the largest absolute relative error over its rows."""
    by_method: dict[str, list[float]] = {}
    for row in rows:
        by_method.setdefault(row.method if row.method == "chars/4" else "proxy", []).append(row.error)
    return {method: {"median_abs": statistics.median(abs(e) for e in errors),
                     "max_abs": max(abs(e) for e in errors), "count": len(errors)}
            for method, errors in by_method.items()}
