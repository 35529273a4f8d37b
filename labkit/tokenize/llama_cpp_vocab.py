"""Vocabularies that labkit does not re-implement (SentencePiece, WordPiece, Unigram), run by llama.cpp.

Llama 2 (``llama-spm``), Phi-3, Mistral and Gemma use SentencePiece-style tokenizers, whose
algorithm differs from byte-level BPE. llama.cpp reads them from a GGUF with its vocabulary-only
loader, ``llama_cpp.Llama(model_path, vocab_only=True)``, which loads no weights (a few hundred
milliseconds even for the 253 MB Gemma 3 270M file). :class:`LlamaCppVocabulary` wraps it with the
same methods as :class:`labkit.tokenize.vocabulary.Vocabulary`.

>>> vocab = LlamaCppVocabulary(assets.llama_vocab_path("llama-spm"), name="llama-spm")  # doctest: +SKIP
>>> vocab.encode("Hello world")                                                        # doctest: +SKIP
[15043, 3186]
>>> vocab.decode([15043, 3186])                                                        # doctest: +SKIP
'Hello world'

SentencePiece vocabularies put a space in front of the text (``tokenizer.ggml.add_space_prefix``),
which is why " Hello" and "Hello" encode alike. Decoding removes that one leading space, as
llama.cpp's ``llama_detokenize`` does.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import io
import os
from pathlib import Path
from typing import Iterable, Iterator

from labkit.native_log import REDIRECT_LOCK, import_llama_cpp
from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.gguf_metadata import read_gguf_metadata
from labkit.tokenize.gguf_vocab import ROLE_KEYS, TokenType
from labkit.tokenize.specials import (
    AllowedSpecial,
    RoleIds,
    allowed_special_ids,
    check_disallowed,
    disallowed_strings,
    partition,
)
from labkit.tokenize.vocabulary import TextDecoding, replace_lone_surrogates


# Texts longer than this many characters go to llama.cpp's SentencePiece in pieces (see
# LlamaCppVocabulary._tokenize_in_pieces).
LONG_TEXT = 1 << 14


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence llama.cpp's log lines while a vocabulary loads.

    llama.cpp writes some lines to file descriptor 2 directly and llama-cpp-python forwards others
    to ``sys.stderr`` from its log callback, so both are redirected.
    """
    with REDIRECT_LOCK, contextlib.redirect_stderr(io.StringIO()):
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class LlamaCppVocabulary(RoleIds, TextDecoding):
    """A GGUF vocabulary run by llama.cpp, with the encode/decode methods of ``Vocabulary``."""

    backend = "llama.cpp"

    def __init__(self, path: str | os.PathLike, *, name: str | None = None, metadata: dict | None = None):
        llama_cpp = import_llama_cpp()  # imported here: loading the shared library takes a moment

        self.path = Path(path)
        if metadata is None:
            metadata = read_gguf_metadata(self.path, raw_strings=True)
        tokens = metadata.get("tokenizer.ggml.tokens")
        if not tokens:
            raise TokenizerError(f"{self.path} contains no tokenizer (the 'tokenizer.ggml.tokens' metadata is missing); use a GGUF model or vocabulary file")
        self.model_type = metadata.get("tokenizer.ggml.model")
        self.name = name or str(metadata.get("general.name") or self.path.stem)
        types = metadata.get("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(tokens)

        self.special_tokens: dict[str, int] = {}
        for token_id, (raw, token_type) in enumerate(zip(tokens, types)):
            if token_type in (TokenType.CONTROL, TokenType.UNKNOWN):
                self.special_tokens.setdefault(raw.decode("utf-8", "replace"), token_id)
        self._special_ids = frozenset(self.special_tokens.values())
        self.roles = {}
        for role, key in ROLE_KEYS.items():
            token_id = metadata.get(key)
            if isinstance(token_id, int) and token_id in self._special_ids:
                self.roles[role] = tokens[token_id].decode("utf-8", "replace")
        self.add_space_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", self.model_type == "llama"))

        try:
            with _quiet_stderr():
                self._llama = llama_cpp.Llama(model_path=str(self.path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as error:
            raise TokenizerError(f"llama.cpp could not load the vocabulary in {self.path}: {error}") from None
        # Llama.__del__ fails with "'NoneType' object is not callable" when it runs during interpreter
        # shutdown, after llama_cpp's module globals are gone; closing at exit frees it before that.
        atexit.register(self._llama.close)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        self._token_to_piece = llama_cpp.llama_token_to_piece
        self.n_vocab = self._llama.n_vocab()
        self._pieces: dict[int, bytes] = {}
        self._token_texts: list[bytes] = tokens
        self._merged_characters: frozenset[str] | None = None

    def __repr__(self) -> str:
        return f"LlamaCppVocabulary({self.name!r}, n_vocab={self.n_vocab}, model={self.model_type!r})"

    # --- encoding -------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[int]:
        if not text:
            return []
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = replace_lone_surrogates(text)
        if self.model_type != "llama" or len(text) <= LONG_TEXT:
            return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return self._tokenize_in_pieces(text)

    def _tokenize_in_pieces(self, text: str) -> list[int]:
        """Tokenize a long text for SentencePiece in pieces that give the same ids as the whole.

        NOTE: llama.cpp's SentencePiece byte fallback (``resegment`` in src/llama-vocab.cpp, as
        vendored in llama-cpp-python 0.3.36) grows its output vector by one symbol at a time. Long
        runs of characters outside the vocabulary are therefore quadratic: 64 000 "\x01"
        characters take 0.6 s, and a megabyte would take minutes. Cutting only before a character
        that no multi-character token contains keeps the ids exact, because no merge can cross
        such a cut.
        """
        ids: list[int] = []
        for index, piece in enumerate(self._cut_long_text(text)):
            piece_ids = self._llama.tokenize(piece.encode("utf-8"), add_bos=False, special=False)
            if index > 0 and self.add_space_prefix:
                # llama.cpp put a space ("▁") in front of this piece too. It cannot have merged with
                # the piece's first character, so it is exactly the tokens of "▁" alone.
                prefix = self._space_prefix_ids()
                if piece_ids[:len(prefix)] != prefix:
                    raise AssertionError(f"unexpected tokens {piece_ids[:4]} at a cut of {self.name}")
                piece_ids = piece_ids[len(prefix):]
            ids.extend(piece_ids)
        return ids

    def _cut_long_text(self, text: str) -> list[str]:
        safe_start = self._characters_in_merged_tokens()
        pieces = []
        start = 0
        position = start + LONG_TEXT
        while position < len(text):
            if text[position] not in safe_start:
                pieces.append(text[start:position])
                start = position
                position = start + LONG_TEXT
            else:
                position += 1
        pieces.append(text[start:])
        return pieces

    def _characters_in_merged_tokens(self) -> frozenset[str]:
        """Characters of all tokens longer than one character (SentencePiece's "▁" read as a space)."""
        if self._merged_characters is None:
            characters: set[str] = set()
            for raw in self._token_texts:
                text = raw.decode("utf-8", "replace").replace("\u2581", " ")
                if len(text) > 1:
                    characters.update(text)
            self._merged_characters = frozenset(characters)
        return self._merged_characters

    def _space_prefix_ids(self) -> list[int]:
        """Ids of "▁" alone: its token, or its three byte tokens when the vocabulary lacks it."""
        ids_of = {raw: token_id for token_id, raw in enumerate(self._token_texts)}
        if "\u2581".encode("utf-8") in ids_of:
            return [ids_of["\u2581".encode("utf-8")]]
        return [ids_of[f"<0x{b:02X}>".encode("ascii")] for b in "\u2581".encode("utf-8")]

    def encode_ordinary(self, text: str) -> list[int]:
        """Return the ids of ``text`` without BOS, special-token strings treated as ordinary text."""
        if not isinstance(text, str):
            raise TokenizerError(f"text must be a str, not {type(text).__name__}; decode bytes first")
        return self._tokenize(text)

    def encode(self, text: str, *, allowed_special: AllowedSpecial = (),
               disallowed_special: AllowedSpecial = ()) -> list[int]:
        """Return the ids of ``text``, special tokens handled as in ``Vocabulary.encode``.

        Allowed special tokens are cut out first and the text between them is tokenized piece by
        piece, which is what llama.cpp does with ``parse_special=true``.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"text must be a str, not {type(text).__name__}; decode bytes first")
        allowed = allowed_special_ids(self.special_tokens, allowed_special)
        disallowed = disallowed_strings(self.special_tokens, allowed.keys(), disallowed_special)
        if disallowed:
            check_disallowed(text, disallowed)
        if not allowed:
            return self._tokenize(text)
        ids: list[int] = []
        for fragment in partition(text, allowed):
            if isinstance(fragment, int):
                ids.append(fragment)
            else:
                ids.extend(self._tokenize(fragment))
        return ids

    # --- decoding -------------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """Return one token's bytes as llama.cpp renders it (special tokens as their text)."""
        self._check_ids([token_id])
        return self._piece(int(token_id))

    def _piece(self, token_id: int) -> bytes:
        piece = self._pieces.get(token_id)
        if piece is None:
            size = 64
            while True:
                buffer = ctypes.create_string_buffer(size)
                written = self._token_to_piece(self._vocab, token_id, buffer, size, 0, True)
                if written >= 0:
                    break
                size = -written  # a negative result is the size the piece needs
            piece = buffer.raw[:written]
            self._pieces[token_id] = piece
        return piece

    def _check_ids(self, ids: list) -> None:
        for position, token_id in enumerate(ids):
            if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
                raise TokenizerError(f"token id at position {position} is {token_id!r}, not an integer")
            if not 0 <= int(token_id) < self.n_vocab:
                raise TokenizerError(f"token id {token_id} at position {position} is out of range for "
                                     f"{self.name!r} (valid ids are 0 to {self.n_vocab - 1})")

    def decode_bytes(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> bytes:
        """Return the bytes of ``ids``, without the space that the space prefix put in front."""
        ids = [int(i) for i in self._checked(ids)]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special_ids]
        pieces = [self._piece(i) for i in ids]
        if pieces and self.add_space_prefix and pieces[0].startswith(b" "):
            pieces[0] = pieces[0][1:]
        return b"".join(pieces)

    def _checked(self, ids: Iterable[int]) -> list:
        ids = list(ids)
        self._check_ids(ids)
        return ids

