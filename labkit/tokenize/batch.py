"""Batches for model input: BOS/EOS, truncation, padding to one length, numpy ids and attention mask.

A model consumes a rectangle of ids, so sequences of different lengths are padded with the PAD id.
The attention mask (1 = real token, 0 = padding) marks the positions the model must ignore.
Causal language models that generate from the end of the prompt are usually padded on the left,
so that every row's last real token sits in the last column.

>>> batch = encode_batch(vocab, ["Hi", "Hello there"], padding_side="left")   # doctest: +SKIP
>>> batch.input_ids                                                            # doctest: +SKIP
array([[ 258,  258,  256,   72,  105],
       [ 256,   72,  101,  108, 1021]])
>>> batch.attention_mask                                                       # doctest: +SKIP
array([[0, 0, 1, 1, 1],
       [1, 1, 1, 1, 1]])

Truncation keeps BOS and EOS: a sequence longer than ``max_length`` loses text tokens from the end
(``truncation_side="right"``) or the start (``"left"``), then gets BOS/EOS back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.specials import AllowedSpecial

Padding = Literal["longest", "max_length", "none"]
Side = Literal["left", "right"]


@dataclass
class Batch:
    """Encoded texts: ``input_ids`` and ``attention_mask`` of shape (texts, length), int64."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    truncated: list[bool]

    @property
    def lengths(self) -> list[int]:
        """Number of real (non-padding) tokens in each row."""
        return [int(n) for n in self.attention_mask.sum(axis=1)]

    def __len__(self) -> int:
        return len(self.input_ids)


def _check_choice(argument: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TokenizerError(f"{argument}={value!r} is not valid; choose one of {choices}")


def _role_id(vocab, role: str, explicit_id: int | None, argument: str) -> int:
    token_id = explicit_id if explicit_id is not None else getattr(vocab, f"{role}_id", None)
    if token_id is None:
        raise TokenizerError(f"vocabulary {vocab.name!r} has no {role.upper()} token; pass {argument}=<id> "
                             f"(for padding, the EOS id is a common choice) or turn the option off")
    if not 0 <= int(token_id) < vocab.n_vocab:
        raise TokenizerError(f"{argument}={token_id} is out of range for {vocab.name!r} (n_vocab {vocab.n_vocab})")
    return int(token_id)


def _truncate(ids: list[int], keep: int, side: Side) -> list[int]:
    return ids[:keep] if side == "right" else ids[len(ids) - keep:]


def encode_batch(
    vocab,
    texts: Sequence[str],
    *,
    add_bos: bool = True,
    add_eos: bool = False,
    max_length: int | None = None,
    padding: Padding = "longest",
    padding_side: Side = "right",
    truncation_side: Side = "right",
    pad_id: int | None = None,
    bos_id: int | None = None,
    eos_id: int | None = None,
    allowed_special: AllowedSpecial = (),
    disallowed_special: AllowedSpecial = (),
) -> Batch:
    """Encode ``texts`` with ``vocab`` into one padded batch (see the module docstring).

    ``padding``: "longest" pads to the longest row, "max_length" to ``max_length``, "none" requires
    rows of equal length. ``max_length`` also truncates. BOS/EOS/PAD ids default to the vocabulary's
    roles; special-token strings in the texts follow ``allowed_special``/``disallowed_special`` as
    in ``Vocabulary.encode`` (ordinary text by default).
    """
    if isinstance(texts, str):
        raise TokenizerError("texts must be a sequence of strings; wrap a single text in a list")
    _check_choice("padding", padding, ("longest", "max_length", "none"))
    _check_choice("padding_side", padding_side, ("left", "right"))
    _check_choice("truncation_side", truncation_side, ("left", "right"))
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise TokenizerError(f"max_length={max_length!r} must be a positive integer")
    if padding == "max_length" and max_length is None:
        raise TokenizerError("padding='max_length' needs max_length=<number of tokens>")

    prefix = [_role_id(vocab, "bos", bos_id, "bos_id")] if add_bos else []
    suffix = [_role_id(vocab, "eos", eos_id, "eos_id")] if add_eos else []
    if max_length is not None and max_length < len(prefix) + len(suffix):
        raise TokenizerError(f"max_length={max_length} leaves no room for BOS and EOS")

    # Step 1: encode, truncate the text part, add BOS/EOS.
    rows: list[list[int]] = []
    truncated: list[bool] = []
    for text in texts:
        ids = vocab.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        room = None if max_length is None else max_length - len(prefix) - len(suffix)
        cut = room is not None and len(ids) > room
        if cut:
            ids = _truncate(ids, room, truncation_side)
        rows.append(prefix + ids + suffix)
        truncated.append(cut)

    # Step 2: choose the length and pad every row to it.
    longest = max((len(row) for row in rows), default=0)
    if padding == "none":
        if any(len(row) != longest for row in rows):
            raise TokenizerError(f"rows have lengths {sorted({len(r) for r in rows})}; with padding='none' "
                                 "they must be equal, so choose padding='longest' or 'max_length'")
        width = longest
    else:
        width = max_length if padding == "max_length" else longest
    needs_padding = any(len(row) < width for row in rows)
    pad = _role_id(vocab, "pad", pad_id, "pad_id") if needs_padding else 0

    input_ids = np.full((len(rows), width), pad, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        if padding_side == "right":
            columns = slice(0, len(row))
        else:
            columns = slice(width - len(row), width)
        input_ids[i, columns] = row
        attention_mask[i, columns] = 1
    return Batch(input_ids, attention_mask, truncated)
