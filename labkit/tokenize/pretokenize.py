"""Pre-tokenization: cut text into chunks with regular expressions before BPE runs inside each chunk.

BPE never merges across a chunk boundary, so the split pattern decides which tokens can exist:
with GPT-2's pattern " dog" can become one token but "dog." cannot.

>>> split_text("Hello world's 12345!", (CL100K_SPLIT_PATTERN,))
['Hello', ' world', "'s", ' ', '123', '45', '!']
>>> split_text("Hello world's 12345!", (GPT2_SPLIT_PATTERN,))
['Hello', ' world', "'s", ' 12345', '!']

A pre-tokenizer is a tuple of patterns applied in sequence. Each pattern splits every chunk the
previous one produced, and text between two matches stays a chunk of its own. Hugging Face calls
this a ``Split`` pre-tokenizer with the ``Isolated`` behaviour, and llama.cpp splits the same way. The
patterns need the third-party ``regex`` module for ``\\p{L}`` classes and possessive quantifiers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import regex

# GPT-2 as published by OpenAI (encoder.py) and as Hugging Face's ByteLevel pre-tokenizer runs it.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# cl100k_base (GPT-4, GPT-3.5, DBRX), as tiktoken 0.9+ declares it. Digits go in groups of at most 3.
CL100K_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# Llama 3 published this pattern in its tokenizer.json; it is cl100k's without possessive quantifiers.
LLAMA3_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2 is Llama 3's pattern with single digits.
QWEN2_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen 3.5 keeps combining marks (\p{M}) inside words.
QWEN35_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Patterns whose matches cover every character of any text. tiktoken drops text that its pattern
# does not match, so only these may be handed to tiktoken as its split pattern.
GAP_FREE_PATTERNS = frozenset({GPT2_SPLIT_PATTERN, CL100K_SPLIT_PATTERN, LLAMA3_SPLIT_PATTERN,
                               QWEN2_SPLIT_PATTERN, QWEN35_SPLIT_PATTERN})

_DIGIT = r"\p{N}"
_PUNCTUATION_RUN = r"[\p{P}\$\+<=>\^~\|]+"
_THREE_ASCII_DIGITS = r"[0-9][0-9][0-9]"

# DeepSeek LLM lists its letter and punctuation ranges explicitly (escaped here so that no editor
# normalizes the characters); DeepSeek LLM and Coder both isolate runs of CJK and Hangul.
_DEEPSEEK_LLM_LETTERS = (
    r"\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    r"\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    r"\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    r"\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    r"\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    r"\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
    r"\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    r"\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
    r"\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
    r"\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    r"\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    r"\U0001e900-\U0001e943]+"
)
_DEEPSEEK_LLM_PUNCTUATION = r"\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
_CJK_HANGUL_RUN = r"[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
_GPT2_WITHOUT_TRAILING_SPACE_RUN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"""

# llama.cpp's name for a vocabulary's pre-tokenizer (GGUF key ``tokenizer.ggml.pre``) → the patterns.
# Source: llama.cpp's src/llama-vocab.cpp as vendored in llama-cpp-python 0.3.36, with the
# case-insensitive groups written back as the ``(?i:...)`` of the original tokenizer.json files,
# because the ``regex`` module supports them. Only pre-tokenizers expressible as regex sequences
# are listed; the others are served by llama.cpp itself (see :mod:`labkit.tokenize.llama_cpp_vocab`).
_GPT2 = (GPT2_SPLIT_PATTERN,)
_LLAMA3 = (LLAMA3_SPLIT_PATTERN,)
_QWEN2 = (QWEN2_SPLIT_PATTERN,)
_STARCODER = (_DIGIT, _GPT2_WITHOUT_TRAILING_SPACE_RUN)
LLAMA_CPP_PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "gpt-2": _GPT2, "phi-2": _GPT2, "mpt": _GPT2, "olmo": _GPT2, "jais": _GPT2, "trillion": _GPT2,
    "granite-docling": _GPT2, "jina-es": _GPT2, "jina-de": _GPT2, "jina-v2-es": _GPT2,
    "jina-v2-de": _GPT2, "gigachat": _GPT2, "mellum": _GPT2, "modern-bert": _GPT2,
    "llama3": _LLAMA3, "llama-v3": _LLAMA3, "llama-bpe": _LLAMA3, "falcon3": _LLAMA3,
    "falcon-h1": _LLAMA3, "pixtral": _LLAMA3, "dbrx": _LLAMA3, "smaug-bpe": _LLAMA3,
    "chatglm-bpe": _LLAMA3,
    "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2, "stablelm2": _QWEN2, "hunyuan": _QWEN2,
    "qwen35": (QWEN35_SPLIT_PATTERN,),
    "starcoder": _STARCODER, "refact": _STARCODER, "command-r": _STARCODER, "smollm": _STARCODER,
    "codeshell": _STARCODER, "exaone": _STARCODER, "minerva-7b": _STARCODER,
    "falcon": (_PUNCTUATION_RUN, _GPT2_WITHOUT_TRAILING_SPACE_RUN, _THREE_ASCII_DIGITS),
    "deepseek-llm": (r"[\r\n]", _DEEPSEEK_LLM_LETTERS, _DEEPSEEK_LLM_PUNCTUATION, r"\s+$",
                     _CJK_HANGUL_RUN, r"\p{N}+"),
    "deepseek-coder": (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK_HANGUL_RUN, _DIGIT),
    # llama.cpp falls back to this sequence when a byte-level GGUF names no pre-tokenizer.
    "default": (_PUNCTUATION_RUN, _GPT2_WITHOUT_TRAILING_SPACE_RUN, r"\p{N}+", _THREE_ASCII_DIGITS),
}


@lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> regex.Pattern:
    """Compile a split pattern once; a pattern that the ``regex`` module rejects raises ValueError."""
    try:
        return regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"invalid split pattern {pattern!r}: {error}") from None


def split_with_pattern(chunk: str, pattern: str) -> list[str]:
    """Split ``chunk`` into the matches of ``pattern`` and the non-empty text between them.

    >>> split_with_pattern("ab12c", r"\\p{N}")
    ['ab', '1', '2', 'c']
    """
    pieces = []
    position = 0
    for match in compile_pattern(pattern).finditer(chunk):
        start, end = match.span()
        if start == end:
            continue  # an empty match cuts nothing
        if start > position:
            pieces.append(chunk[position:start])
        pieces.append(chunk[start:end])
        position = end
    if position < len(chunk):
        pieces.append(chunk[position:])
    return pieces


def split_text(text: str, patterns: Sequence[str]) -> list[str]:
    """Cut ``text`` into pre-token chunks with each pattern in turn (see the module docstring)."""
    chunks = [text] if text else []
    for pattern in patterns:
        chunks = [piece for chunk in chunks for piece in split_with_pattern(chunk, pattern)]
    return chunks


def llama_cpp_patterns(pre_tokenizer: str) -> tuple[str, ...]:
    """Return the split patterns of a llama.cpp pre-tokenizer name, e.g. ``"llama-bpe"``.

    Raises KeyError naming the supported names when this module cannot reproduce ``pre_tokenizer``.
    """
    try:
        return LLAMA_CPP_PRE_TOKENIZERS[pre_tokenizer]
    except KeyError:
        raise KeyError(
            f"pre-tokenizer {pre_tokenizer!r} has no regex form here; supported: "
            f"{', '.join(sorted(LLAMA_CPP_PRE_TOKENIZERS))}"
        ) from None
