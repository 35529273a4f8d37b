"""Save and load a Vocabulary as human-readable JSON, one token per line, special tokens exact.

>>> save_vocabulary(vocab, "pydoc-1k.json")          # doctest: +SKIP
>>> load_vocabulary_file("pydoc-1k.json").encode("Hello")  # doctest: +SKIP

The file (format ``labkit-bpe``, version 1) is one JSON object::

    {
      "format": "labkit-bpe",
      "version": 1,
      "name": "pydoc-1k",
      "patterns": ["'s|'t|'re|..."],                  split patterns, applied in sequence
      "special_tokens": {"<s>": 1020, "</s>": 1021},  control tokens (string → id)
      "roles": {"bos": "<s>", "eos": "</s>"},          which special token plays which role
      "added_tokens": {},                             literal tokens always matched in text
      "tokens": [
        [0, "\\x00"],
        [32, " "],
        [256, " t"],                                  id, bytes; the id is also the merge rank
        ...
      ],
      "extra_tokens": []                              decode-only tokens, same shape as "tokens"
    }

A token's bytes are written as text: UTF-8 where the bytes are valid UTF-8, ``\\xNN`` for each other
byte, and ``\\\\`` for a backslash (inside JSON each backslash is doubled once more). Loading checks
every field and raises TokenizerError naming the problem, so a corrupt file never loads silently.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.vocabulary import Vocabulary

FORMAT = "labkit-bpe"
VERSION = 1
# An escaped backslash, an escaped byte, a stray backslash, or a run of plain characters.
_TEXT_PIECE = re.compile(r"\\\\|\\x[0-9a-fA-F]{2}|\\|[^\\]+")


def token_to_text(token: bytes) -> str:
    """Write token bytes as readable text (see the module docstring).

    >>> token_to_text(b" caf\\xc3\\xa9"), token_to_text(b"\\xe2\\x80"), token_to_text(b"a\\\\b")
    (' café', '\\\\xe2\\\\x80', 'a\\\\\\\\b')
    """
    return token.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def text_to_token(text: str) -> bytes:
    """Read token bytes back from :func:`token_to_text`'s form; a stray backslash raises TokenizerError.

    >>> text_to_token("\\\\xe2\\\\x80") == b"\\xe2\\x80"
    True
    """
    if "\\" not in text:
        return text.encode("utf-8")
    token = bytearray()
    for match in _TEXT_PIECE.finditer(text):
        piece = match.group()
        if piece == "\\\\":
            token += b"\\"
        elif piece.startswith("\\x") and len(piece) == 4:
            token.append(int(piece[2:], 16))
        elif piece.startswith("\\"):
            raise TokenizerError(f"token text {text!r} has a stray backslash; a backslash is written as two "
                                 "backslashes and a non-UTF-8 byte as \\xNN")
        else:
            token += piece.encode("utf-8")
    return bytes(token)


def _token_lines(table: dict[int, bytes]) -> str:
    lines = [f"    [{token_id}, {json.dumps(token_to_text(token), ensure_ascii=False)}]"
             for token_id, token in sorted(table.items())]
    return "[\n" + ",\n".join(lines) + "\n  ]" if lines else "[]"


def save_vocabulary(vocab: Vocabulary, path: str | os.PathLike) -> Path:
    """Write ``vocab`` to ``path`` (replaced atomically) and return the path."""
    if not isinstance(vocab, Vocabulary):
        raise TokenizerError(f"only a byte-level BPE Vocabulary can be saved, not {type(vocab).__name__}; "
                             "a GGUF vocabulary is already stored in its GGUF file")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "name": vocab.name,
        "patterns": list(vocab.patterns),
        "special_tokens": vocab.special_tokens,
        "roles": vocab.roles,
        "added_tokens": vocab.added_tokens,
    }
    # json.dumps for the small fields, then one line per token so the file reads like a table.
    body = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in header.items())
    ranks = {token_id: token for token, token_id in vocab.ranks.items()}
    text = ("{\n" + body + ",\n"
            + f'  "tokens": {_token_lines(ranks)},\n'
            + f'  "extra_tokens": {_token_lines(vocab.extra_tokens)}\n'
            + "}\n")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                     prefix=path.name, suffix=".partial") as file:
        file.write(text)
    os.replace(file.name, path)
    return path


def _require(document: dict, key: str, kind: type, path: str):
    value = document.get(key)
    if not isinstance(value, kind):
        raise TokenizerError(f"{path}: field {key!r} must be a {kind.__name__}, found {type(value).__name__}; "
                             "the file is corrupt or not a labkit vocabulary")
    return value


def _read_token_table(entries: list, field: str, path: str) -> dict[int, bytes]:
    table: dict[int, bytes] = {}
    for position, entry in enumerate(entries):
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], int)
                or isinstance(entry[0], bool) or not isinstance(entry[1], str)):
            raise TokenizerError(f"{path}: {field}[{position}] must be [id, text], found {entry!r}")
        token_id, text = entry
        if token_id in table:
            raise TokenizerError(f"{path}: id {token_id} appears twice in {field}")
        try:
            table[token_id] = text_to_token(text)
        except TokenizerError as error:
            raise TokenizerError(f"{path}: {field}[{position}]: {error}") from None
    return table


def load_vocabulary_file(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary written by :func:`save_vocabulary`; it encodes with the readable Python backend."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except FileNotFoundError:
        raise TokenizerError(f"vocabulary file {path} does not exist; check the path") from None
    except UnicodeDecodeError:
        raise TokenizerError(f"{path} is not UTF-8 text, so it is not a labkit vocabulary") from None
    except json.JSONDecodeError as error:
        raise TokenizerError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, "
                             f"column {error.colno}); the file is corrupt") from None

    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TokenizerError(f"{path} is not a labkit vocabulary (expected \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise TokenizerError(f"{path} has format version {document.get('version')!r}; "
                             f"this labkit reads version {VERSION}")

    tokens = _read_token_table(_require(document, "tokens", list, path), "tokens", path)
    extra = _read_token_table(document.get("extra_tokens") or [], "extra_tokens", path)
    ranks = {token: token_id for token_id, token in tokens.items()}
    if len(ranks) != len(tokens):
        raise TokenizerError(f"{path}: two ids in 'tokens' have the same bytes; the file is corrupt")
    patterns = _require(document, "patterns", list, path)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise TokenizerError(f"{path}: 'patterns' must be a non-empty list of strings")
    try:
        return Vocabulary(
            _require(document, "name", str, path),
            ranks,
            patterns,
            special_tokens=_require(document, "special_tokens", dict, path),
            added_tokens=document.get("added_tokens") or {},
            extra_tokens=extra,
            roles=document.get("roles") or {},
            backend="python",
        )
    except ValueError as error:  # TokenizerError, or an invalid split pattern
        raise TokenizerError(f"{path}: {error}") from None
