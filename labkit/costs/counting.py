"""Count tokens the way each model's tokenizer counts them, for text and for chat messages.

Every tokenizer here runs offline and comes from :func:`labkit.tokenize.load_vocabulary`:
``cl100k`` (GPT-4, DBRX), ``llama-bpe`` (Llama 3.x), ``llama-spm`` (Llama 2), ``gemma3-270m``
(Gemma 3), ``qwen2``, ``gpt-2``, ``bert-bge`` (BGE and GTE embeddings) and ``smollm2`` (the
stand-in's chat model). For a catalog model whose tokenizer is not available offline
(o200k models, Claude, Gemini, Llama 4, Mixtral), the count comes from the nearest available
tokenizer and is marked as an estimate; :mod:`labkit.costs.estimate` measures how far off that is.

>>> count_tokens("Hello world", "cl100k").tokens
2
>>> count_tokens("Hello world", "databricks-gpt-5-mini")
TokenCount(tokens=2, exact=False, tokenizer='cl100k')
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable

from labkit.costs import catalog
from labkit.costs.chat import render_chat

# Every tokenizer comes from labkit.tokenize.load_vocabulary, by these names.
TOKENIZERS = ("cl100k", "llama-bpe", "llama-spm", "gemma3-270m", "qwen2", "gpt-2", "bert-bge", "smollm2")

# Role markers such as <|im_start|> or <|start|> are one token each in the tokenizers that define
# them (DBRX's cl100k extension, o200k_harmony), but plain text to cl100k itself.
_MARKER = re.compile(r"<\|[a-z_]{1,20}\|>")


@dataclass(frozen=True)
class TokenCount:
    """A token count; ``exact`` is False when ``tokenizer`` only approximates the model's own."""

    tokens: int
    exact: bool
    tokenizer: str


@dataclass(frozen=True)
class Tokenizer:
    """A tokenizer as counting uses it: plain-text encoding and the special-token strings."""

    name: str
    encode: Callable[[str], list[int]]
    special_tokens: frozenset[str]
    bos_token: str = ""


@functools.cache
def get_tokenizer(name: str) -> Tokenizer:
    """Load a tokenizer by name (see ``TOKENIZERS``); raise ``KeyError`` for an unknown name."""
    if name not in TOKENIZERS:
        raise KeyError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
    from labkit.tokenize import load_vocabulary

    vocabulary = load_vocabulary(name)
    bos = ""
    if vocabulary.bos_id is not None:
        bos = vocabulary.token_bytes(vocabulary.bos_id).decode("utf-8", errors="replace")
    # encode_ordinary reads special-token strings as text, as an API reads user content.
    return Tokenizer(name, vocabulary.encode_ordinary, frozenset(vocabulary.special_tokens), bos)


@functools.cache
def _special_pattern(tokenizer: Tokenizer, markers_are_tokens: bool) -> re.Pattern | None:
    # Longest first, so that a special token wins over any special token that is its prefix.
    alternatives = [re.escape(s) for s in sorted(tokenizer.special_tokens, key=len, reverse=True) if s]
    if markers_are_tokens:
        alternatives.append(_MARKER.pattern)
    return re.compile("|".join(alternatives)) if alternatives else None


def encode_prompt(tokenizer: Tokenizer, text: str, *, markers_are_tokens: bool = False) -> list[int | str]:
    """Split ``text`` at special tokens, count each as one token and encode the text between them.

    This is how llama.cpp and Hugging Face tokenizers treat a rendered chat prompt. Special tokens
    come back as their strings, text pieces as ids. With ``markers_are_tokens``, role markers like
    ``<|im_start|>`` count as one token even if the vocabulary lacks them (see ``_MARKER``).
    """
    pattern = _special_pattern(tokenizer, markers_are_tokens)
    if pattern is None:
        return list(tokenizer.encode(text))

    pieces: list[int | str] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.extend(tokenizer.encode(text[position:match.start()]))
        pieces.append(match.group())
        position = match.end()
    if position < len(text):
        pieces.extend(tokenizer.encode(text[position:]))
    return pieces


def _resolve(model: str) -> tuple[str, bool, str]:
    """Return (tokenizer name, exact, chat template) for a tokenizer name or a catalog model."""
    if model in TOKENIZERS:
        return model, True, ""
    try:
        price = catalog.get_price(model)
    except KeyError:
        raise KeyError(f"unknown model or tokenizer {model!r}; use a catalog endpoint "
                       f"(`labkit cost prices`) or a tokenizer: {', '.join(TOKENIZERS)}") from None
    return price.count_tokenizer, price.count_exact, price.chat_template


def count_tokens(text: str, model: str) -> TokenCount:
    """Count the tokens of plain ``text`` for a model (catalog name) or a tokenizer (``TOKENIZERS``).

    Special-token strings in ``text`` are counted as text, as an API counts user content.
    """
    name, exact, _ = _resolve(model)
    return TokenCount(len(get_tokenizer(name).encode(text)), exact, name)


# Tokens a chat request adds around each message and to prime the reply when no template is known:
# the figures OpenAI published for its ChatML models (gpt-3.5-turbo, gpt-4).
CHATML_TOKENS_PER_MESSAGE = 3
CHATML_TOKENS_PER_REPLY = 3


def count_chat(messages: list[dict], model: str) -> TokenCount:
    """Count the prompt tokens of a chat request: the messages rendered by the model's template.

    >>> count_chat([{"role": "user", "content": "Hi"}], "databricks-dbrx-instruct")
    TokenCount(tokens=9, exact=False, tokenizer='cl100k')
    """
    name, exact, template = _resolve(model)
    tokenizer = get_tokenizer(name)
    if not template:
        # No template for this model: content tokens plus ChatML's fixed overhead, an estimate.
        content = sum(len(tokenizer.encode(m["role"])) + len(tokenizer.encode(m["content"]))
                      for m in messages)
        total = content + CHATML_TOKENS_PER_MESSAGE * len(messages) + CHATML_TOKENS_PER_REPLY
        return TokenCount(total, False, name)

    prompt = render_chat(messages, template, bos_token=tokenizer.bos_token)
    # cl100k defines no chat markers, but the chat models built on it (DBRX) or on its successor
    # (o200k_harmony) add them as single tokens. A proxy tokenizer lacks the real one's markers too.
    pieces = encode_prompt(tokenizer, prompt, markers_are_tokens=name == "cl100k" or not exact)
    # Generic ChatML is not DBRX's own template, which adds a long default system prompt.
    return TokenCount(len(pieces), exact and template != "chatml", name)
