"""Special tokens: control tokens such as BOS and EOS, and the rule that user text never becomes one.

A special token is a control id whose string (``"<s>"``, ``"<|endoftext|>"``) could also appear in
user text. A model treats the id as an instruction ("a new document starts", "the turn ends"), so a
tokenizer that turned user-typed ``"</s>"`` into the EOS id would let users inject control
(special-token injection). Every encoder in labkit therefore follows tiktoken's two sets:

* ``allowed_special``: strings that become their control id where they appear (default: none);
* ``disallowed_special``: strings whose presence raises :class:`SpecialTokenError` (default: none
  here, so a special token's string is encoded as ordinary text; pass ``"all"`` to reject it).

>>> specials = {"<s>": 256, "</s>": 257}
>>> partition("hi</s>", allowed_special_ids(specials, {"</s>"}))
['hi', 257]
>>> check_disallowed("hi</s>", disallowed_strings(specials, set(), "all"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
labkit.tokenize.errors.SpecialTokenError: text contains the special token '</s>' at character 2; ...

Training gives four roles with configurable strings (:class:`SpecialTokenNames`): BOS ``<s>``,
EOS ``</s>``, PAD ``<pad>``, UNK ``<unk>``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import AbstractSet, Collection, Literal, Mapping, Union

from labkit.tokenize.errors import SpecialTokenError, TokenizerError

AllowedSpecial = Union[Literal["all"], Collection[str]]
ROLES = ("bos", "eos", "pad", "unk")


@dataclass(frozen=True)
class SpecialTokenNames:
    """The string of each special-token role: beginning and end of sequence, padding, unknown."""

    bos: str = "<s>"
    eos: str = "</s>"
    pad: str = "<pad>"
    unk: str = "<unk>"

    def __post_init__(self) -> None:
        strings = list(asdict(self).values())
        if any(not isinstance(s, str) or not s for s in strings):
            raise TokenizerError(f"special token strings must be non-empty strings, got {strings}")
        if len(set(strings)) != len(strings):
            raise TokenizerError(f"special token strings must differ from each other, got {strings}")

    def roles(self) -> dict[str, str]:
        """Return ``{role: string}``, e.g. ``{"bos": "<s>", ...}``."""
        return asdict(self)


def _as_set(value: AllowedSpecial, special_tokens: Mapping[str, int], argument: str) -> set[str]:
    if value == "all":
        return set(special_tokens)
    if isinstance(value, str):
        raise TokenizerError(f"{argument} must be 'all' or a set of token strings, not the string {value!r}; "
                             f"write {{{value!r}}} for a set of one")
    chosen = set(value)
    unknown = sorted(chosen - set(special_tokens))
    if unknown:
        raise TokenizerError(f"{argument} names {unknown}, which are not special tokens of this vocabulary; "
                             f"its special tokens are {sorted(special_tokens)[:20]}")
    return chosen


def allowed_special_ids(special_tokens: Mapping[str, int], allowed_special: AllowedSpecial) -> dict[str, int]:
    """Return ``{string: id}`` for the special tokens that ``allowed_special`` lets through."""
    return {s: special_tokens[s] for s in _as_set(allowed_special, special_tokens, "allowed_special")}


def disallowed_strings(special_tokens: Mapping[str, int], allowed: AbstractSet[str],
                       disallowed_special: AllowedSpecial) -> set[str]:
    """Return the special-token strings that must not appear in the text (``"all"`` = all not allowed)."""
    if disallowed_special == "all":
        return set(special_tokens) - set(allowed)
    return _as_set(disallowed_special, special_tokens, "disallowed_special") - set(allowed)


def check_disallowed(text: str, disallowed: AbstractSet[str]) -> None:
    """Raise SpecialTokenError naming the first disallowed special-token string found in ``text``."""
    found = [(text.find(s), s) for s in disallowed if s in text]
    if not found:
        return
    position, string = min(found)
    raise SpecialTokenError(
        f"text contains the special token {string!r} at character {position}; "
        f"pass allowed_special={{{string!r}}} to encode it as its control id, or "
        f"disallowed_special=() to encode it as ordinary text"
    )


def partition(text: str, literal_tokens: Mapping[str, int]) -> list[str | int]:
    """Cut ``text`` at every occurrence of the strings in ``literal_tokens``, which become their ids.

    The longest string is cut first, then the next longest in the text that remains, and so on,
    which is how llama.cpp matches special and user-defined tokens.

    >>> partition("a<s>b<s/>", {"<s>": 1, "<s/>": 2})
    ['a', 1, 'b', 2]
    """
    present = [s for s in literal_tokens if s and s in text]
    if not present:
        return [text] if text else []

    fragments: list[str | int] = [text]
    for string in sorted(present, key=len, reverse=True):
        token_id = literal_tokens[string]
        cut: list[str | int] = []
        for fragment in fragments:
            if isinstance(fragment, int) or string not in fragment:
                cut.append(fragment)
                continue
            pieces = fragment.split(string)
            for i, piece in enumerate(pieces):
                if i:
                    cut.append(token_id)
                if piece:
                    cut.append(piece)
        fragments = cut
    return fragments


class RoleIds:
    """Ids of the BOS, EOS, PAD and UNK roles, for a vocabulary with ``roles`` and ``special_tokens``.

    ``roles`` maps a role to its special token's string, and ``special_tokens`` maps that string to
    its id. A role the vocabulary does not have gives None.
    """

    roles: dict[str, str]
    special_tokens: dict[str, int]

    def _role_id(self, role: str) -> int | None:
        string = self.roles.get(role)
        return None if string is None else self.special_tokens[string]

    @property
    def bos_id(self) -> int | None:
        return self._role_id("bos")

    @property
    def eos_id(self) -> int | None:
        return self._role_id("eos")

    @property
    def pad_id(self) -> int | None:
        return self._role_id("pad")

    @property
    def unk_id(self) -> int | None:
        return self._role_id("unk")
