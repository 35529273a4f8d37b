"""Byte-level BPE vocabularies from GGUF files (``tokenizer.ggml.model == "gpt2"``) as labkit Vocabularies.

GGUF stores these tokens the way Hugging Face's vocab.json does: each byte is written as one
printable character of GPT-2's byte alphabet ("Ġ" is the space byte, "Ċ" the newline byte), so
``"Ġthe"`` is the bytes ``b" the"``. Mapping the alphabet back gives bytes, and since every byte-level
vocabulary checked here numbers its tokens in merge order, a token's id is its rank. The
pre-tokenizer named in ``tokenizer.ggml.pre`` becomes its split patterns
(:data:`labkit.tokenize.pretokenize.LLAMA_CPP_PRE_TOKENIZERS`).

>>> vocab = load_byte_level_gguf(assets.llama_vocab_path("llama-bpe"))     # doctest: +SKIP
>>> vocab.encode("Hello world")                                             # doctest: +SKIP
[9906, 1917]

GGUF token types (gguf-py ``TokenType``) decide each token's part: NORMAL tokens are BPE tokens,
CONTROL and UNKNOWN tokens are special tokens, USER_DEFINED tokens are literal added tokens matched
in the text, as llama.cpp does with ``parse_special=false``.
"""

from __future__ import annotations

import logging
import os
from enum import IntEnum
from functools import lru_cache
from pathlib import Path

from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.gguf_metadata import read_gguf_metadata
from labkit.tokenize.pretokenize import llama_cpp_patterns
from labkit.tokenize.vocabulary import Backend, Vocabulary

log = logging.getLogger(__name__)


class TokenType(IntEnum):
    """GGUF ``tokenizer.ggml.token_type`` values (as in gguf-py's ``TokenType``)."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


# GGUF metadata key of each special-token role.
ROLE_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "pad": "tokenizer.ggml.padding_token_id",
    "unk": "tokenizer.ggml.unknown_token_id",
}


@lru_cache(maxsize=1)
def gpt2_byte_alphabet() -> dict[int, str]:
    """Return GPT-2's map from each byte to a printable character.

    Printable Latin-1 bytes stand for themselves; the 68 others (controls, space, 0x7F-0xA0, 0xAD)
    take the characters U+0100, U+0101, ... in byte order, so the space byte 0x20 becomes "Ġ" (U+0120).

    >>> gpt2_byte_alphabet()[ord(" ")], gpt2_byte_alphabet()[ord("\\n")], gpt2_byte_alphabet()[ord("A")]
    ('Ġ', 'Ċ', 'A')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {b: chr(b) for b in printable}
    next_code_point = 256
    for b in range(256):
        if b not in alphabet:
            alphabet[b] = chr(next_code_point)
            next_code_point += 1
    return alphabet


@lru_cache(maxsize=1)
def _alphabet_to_byte() -> dict[str, int]:
    return {character: b for b, character in gpt2_byte_alphabet().items()}


def alphabet_to_bytes(token: str) -> bytes | None:
    """Return the bytes a GPT-2-alphabet token stands for, or None if it has a character outside the alphabet.

    >>> alphabet_to_bytes("Ġthe")
    b' the'
    """
    table = _alphabet_to_byte()
    try:
        return bytes(table[character] for character in token)
    except KeyError:
        return None


def _metadata_value(metadata: dict, key: str, path: str):
    try:
        return metadata[key]
    except KeyError:
        raise TokenizerError(f"{path} has no {key!r} metadata, so it contains no byte-level BPE vocabulary; check the file") from None


def _decode_token_text(raw: bytes, token_id: int, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenizerError(f"{path}: token {token_id} is not valid UTF-8 ({raw!r}); the file is corrupt") from None


def vocabulary_from_gguf_metadata(metadata: dict, *, path: str, name: str | None = None,
                                  backend: Backend = "tiktoken") -> Vocabulary:
    """Build a Vocabulary from the metadata of a byte-level BPE GGUF (see the module docstring)."""
    model = metadata.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise TokenizerError(f"{path} contains a {model!r} tokenizer, not byte-level BPE ('gpt2'); "
                             "load it with labkit.tokenize.load_vocabulary, which uses llama.cpp for it")
    pre_tokenizer = metadata.get("tokenizer.ggml.pre") or "default"
    patterns = llama_cpp_patterns(pre_tokenizer)

    raw_tokens = _metadata_value(metadata, "tokenizer.ggml.tokens", path)
    types = metadata.get("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(raw_tokens)
    merges = metadata.get("tokenizer.ggml.merges") or []
    if len(types) != len(raw_tokens):
        raise TokenizerError(f"{path}: {len(raw_tokens)} tokens but {len(types)} token types; the file is corrupt")

    # Step 1: sort every token into its part by type.
    texts = [_decode_token_text(raw, i, path) for i, raw in enumerate(raw_tokens)]
    normal: dict[bytes, int] = {}
    special: dict[str, int] = {}
    added: dict[str, int] = {}
    extra: dict[int, bytes] = {}
    for token_id, (text, token_type) in enumerate(zip(texts, types)):
        if token_type in (TokenType.NORMAL, TokenType.BYTE):
            token = alphabet_to_bytes(text)
            if token is None or token in normal:
                # Outside the byte alphabet (or a duplicate): decodable, never produced by BPE.
                extra[token_id] = token if token is not None else text.encode("utf-8")
            else:
                normal[token] = token_id
        elif token_type in (TokenType.CONTROL, TokenType.UNKNOWN) and text not in special:
            special[text] = token_id
        elif token_type == TokenType.USER_DEFINED and text not in added:
            added[text] = token_id
        else:
            extra[token_id] = text.encode("utf-8")

    # Step 2: BPE may only produce single bytes and the results of merges. Any other NORMAL token
    # (present in some converted vocabularies) is kept for decoding only.
    token_id_of = {text: i for i, text in enumerate(texts)}
    reachable = {token_id for token, token_id in normal.items() if len(token) == 1}
    for merge in merges:
        left, separator, right = merge.partition(" ")
        merged_id = token_id_of.get(left + right)
        if not separator or merged_id is None:
            raise TokenizerError(f"{path}: merge {merge!r} does not produce a token of the vocabulary; "
                                 "the file is corrupt")
        reachable.add(merged_id)
    ranks: dict[bytes, int] = {}
    for token, token_id in normal.items():
        if token_id in reachable:
            ranks[token] = token_id
        else:
            extra[token_id] = token
    if len(ranks) < len(normal):
        log.debug("%s: %d normal tokens are not reachable by merges; kept for decoding only",
                  path, len(normal) - len(ranks))

    # Step 3: the roles, where they point at a special token.
    roles = {}
    for role, key in ROLE_KEYS.items():
        token_id = metadata.get(key)
        if isinstance(token_id, int) and 0 <= token_id < len(texts) and special.get(texts[token_id]) == token_id:
            roles[role] = texts[token_id]

    return Vocabulary(name or str(metadata.get("general.name") or Path(path).stem), ranks, patterns,
                      special_tokens=special, added_tokens=added, extra_tokens=extra, roles=roles,
                      n_vocab=len(raw_tokens), backend=backend)


def load_byte_level_gguf(path: str | os.PathLike, *, name: str | None = None, backend: Backend = "tiktoken",
                         metadata: dict | None = None) -> Vocabulary:
    """Read a byte-level BPE vocabulary from a GGUF file (a vocabulary-only file or a whole model).

    ``metadata``, when given, is the file's metadata already read with ``raw_strings=True``.
    """
    path = os.fspath(path)
    metadata = dict(metadata) if metadata is not None else read_gguf_metadata(path, raw_strings=True)
    merges = metadata.get("tokenizer.ggml.merges")
    if merges and isinstance(merges[0], bytes):
        metadata["tokenizer.ggml.merges"] = [m.decode("utf-8", "replace") for m in merges]
    return vocabulary_from_gguf_metadata(metadata, path=path, name=name, backend=backend)
