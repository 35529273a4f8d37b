"""Block formats: what each GGUF tensor type declares once, and ``quantize`` / ``dequantize``.

A block format cuts every row of a weight matrix into blocks of ``block_size`` values and stores
each block in ``type_size`` bytes (a scale or two and the small integers). Each format is a class
that declares its type id, block size and byte layout. The layout is a numpy structured dtype,
which both documents the bytes and reads or writes them, and each class converts whole arrays of
blocks at a time:

>>> import numpy as np
>>> from labkit.quantize import quantize, dequantize, get_format
>>> fmt = get_format("Q8_0")
>>> fmt.block_size, fmt.type_size, fmt.bits_per_weight
(32, 34, 8.5)
>>> row = np.linspace(-1, 1, 64, dtype=np.float32)
>>> data = quantize(row, "Q8_0")                # two blocks of 34 bytes
>>> data.shape
(68,)
>>> float(np.abs(dequantize(data, "Q8_0") - row).max()) < 0.004
True

Policy for values that no format can store: NaN and infinity are rejected with
:class:`NonFiniteValuesError` (llama.cpp's quantizer rejects the resulting blocks too). Finite
values are converted exactly as ggml's reference code converts them, even where a scale
overflows float16; whole-model quantization checks for that afterwards.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType


class QuantizeError(ValueError):
    """Input that cannot be quantized or dequantized; the message names the problem and the fix."""


class NonFiniteValuesError(QuantizeError):
    """The values to quantize contain NaN or infinity."""


class BlockFormat:
    """One GGUF tensor type: its block size, byte layout and block-wise conversion.

    Subclasses set ``ggml_type``, ``block_size``, ``layout`` and ``summary`` and implement
    :meth:`quantize_blocks` and :meth:`dequantize_blocks`. Defining the subclass registers it
    under its type name unless the class statement passes ``register=False``.
    """

    ggml_type: ClassVar[GGMLQuantizationType]
    block_size: ClassVar[int]
    layout: ClassVar[np.dtype]           # one block, field by field, little-endian
    summary: ClassVar[str]               # the layout in words, for tables and the book
    # Blocks converted per call: bounds the temporary arrays of the K-quant scale search.
    chunk_blocks: ClassVar[int] = 1 << 16

    def __init_subclass__(cls, register: bool = True, **kwargs):
        super().__init_subclass__(**kwargs)
        if not register:      # a readable twin of a registered format
            return
        expected = GGML_QUANT_SIZES[cls.ggml_type]
        if (cls.block_size, cls.layout.itemsize) != expected:
            raise TypeError(f"{cls.__name__}: layout gives (block size, bytes) "
                            f"{(cls.block_size, cls.layout.itemsize)}, ggml says {expected}")
        FORMATS[cls.ggml_type.name] = cls()

    @property
    def name(self) -> str:
        return self.ggml_type.name

    @property
    def type_size(self) -> int:
        """Bytes per block."""
        return self.layout.itemsize

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.type_size / self.block_size

    def row_bytes(self, n_per_row: int) -> int:
        """Bytes that one row of ``n_per_row`` values takes (which must be whole blocks)."""
        return n_per_row // self.block_size * self.type_size

    def quantize_blocks(self, blocks: np.ndarray) -> np.ndarray:
        """Convert float32 ``blocks`` of shape (n, block_size) to an array of n ``layout`` records."""
        raise NotImplementedError

    def dequantize_blocks(self, records: np.ndarray) -> np.ndarray:
        """Convert n ``layout`` records back to float32 values of shape (n, block_size)."""
        raise NotImplementedError

    def invalid_blocks(self, records: np.ndarray) -> np.ndarray:
        """Flag the blocks that llama.cpp's validation rejects: a NaN or infinite float16 field.

        For the unblocked formats the value itself is checked. Returns a bool array of length n.
        """
        if self.layout.names is None:
            return ~np.isfinite(self.dequantize_blocks(records)).all(axis=1)
        invalid = np.zeros(len(records), dtype=bool)
        for name in self.layout.names:
            if self.layout[name] == np.dtype("<f2"):
                invalid |= ~np.isfinite(records[name])
        return invalid

    def __repr__(self) -> str:
        return (f"<{self.name}: {self.block_size} values in {self.type_size} bytes, "
                f"{self.bits_per_weight:g} bits per weight>")


FORMATS: dict[str, BlockFormat] = {}


def get_format(fmt: str | int | GGMLQuantizationType | BlockFormat) -> BlockFormat:
    """Return the format for a name (``"Q4_K"``), a ggml type id (12) or a format itself.

    >>> get_format(14).name
    'Q6_K'
    """
    if isinstance(fmt, BlockFormat):
        return fmt
    if isinstance(fmt, str):
        key = fmt.upper()
    else:
        try:
            key = GGMLQuantizationType(int(fmt)).name
        except ValueError:
            key = str(fmt)
    if key not in FORMATS:
        raise QuantizeError(f"unsupported tensor type {fmt!r}; labkit implements "
                            f"{', '.join(FORMATS)}")
    return FORMATS[key]


def check_finite(values: np.ndarray) -> None:
    """Raise :class:`NonFiniteValuesError` naming how many values are NaN or infinite, and where."""
    finite = np.isfinite(values)
    if finite.all():
        return
    bad = np.flatnonzero(~finite.reshape(-1))
    first = np.unravel_index(bad[0], values.shape)
    raise NonFiniteValuesError(
        f"{bad.size} of {values.size} values are NaN or infinite (first at index "
        f"{tuple(int(i) for i in first)}: {values[first]}); quantization needs finite weights, "
        "so repair or drop them first"
    )


def check_row_length(n_per_row: int, fmt: BlockFormat) -> None:
    if n_per_row % fmt.block_size:
        raise QuantizeError(
            f"row length {n_per_row} is not a multiple of the {fmt.name} block size "
            f"{fmt.block_size}; pick a format whose block size divides it (llama.cpp falls back "
            "from Q4_K to Q5_0 and from Q6_K to Q8_0 for such rows)"
        )


def quantize(values: np.ndarray, fmt: str | int | BlockFormat) -> np.ndarray:
    """Quantize ``values`` (any shape; rows along the last axis) to ``fmt``'s bytes.

    Returns uint8 of shape ``(*values.shape[:-1], row_bytes)``. Raises :class:`QuantizeError`
    when the last axis is not a whole number of blocks and :class:`NonFiniteValuesError` on NaN
    or infinity.

    >>> quantize(np.zeros((2, 32), dtype=np.float32), "Q8_0").shape     # 2 rows of one block
    (2, 34)
    """
    fmt = get_format(fmt)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 0:
        raise QuantizeError("quantize needs at least one row of values, got a scalar")
    check_row_length(values.shape[-1], fmt)
    check_finite(values)

    blocks = values.reshape(-1, fmt.block_size)
    out = np.empty(len(blocks), dtype=fmt.layout)
    # Overflow to inf and inf * 0 are part of the C arithmetic being reproduced, not mistakes.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for start in range(0, len(blocks), fmt.chunk_blocks):
            stop = start + fmt.chunk_blocks
            out[start:stop] = fmt.quantize_blocks(np.ascontiguousarray(blocks[start:stop]))
    return out.view(np.uint8).reshape(*values.shape[:-1], fmt.row_bytes(values.shape[-1]))


def dequantize(data: np.ndarray, fmt: str | int | BlockFormat) -> np.ndarray:
    """Expand ``fmt``'s bytes (uint8, rows along the last axis) back to float32 values.

    >>> dequantize(quantize(np.full(32, 2.0, dtype=np.float32), "Q8_0"), "Q8_0")[:2].tolist()
    [1.9998779296875, 1.9998779296875]

    (2.0 comes back as 127 times the scale 2/127, which float16 stores as 0.015747.)
    """
    fmt = get_format(fmt)
    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise QuantizeError(f"dequantize needs the raw bytes (uint8), got {data.dtype}")
    if data.ndim == 0 or data.shape[-1] % fmt.type_size:
        raise QuantizeError(f"row of {data.shape[-1] if data.ndim else 0} bytes is not a whole "
                            f"number of {fmt.name} blocks ({fmt.type_size} bytes each)")

    records = np.ascontiguousarray(data).reshape(-1).view(fmt.layout)
    out = np.empty((len(records), fmt.block_size), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):      # an inf scale times 0 gives NaN, as in C
        for start in range(0, len(records), fmt.chunk_blocks):
            stop = start + fmt.chunk_blocks
            out[start:stop] = fmt.dequantize_blocks(records[start:stop])
    n_per_row = data.shape[-1] // fmt.type_size * fmt.block_size
    return out.reshape(*data.shape[:-1], n_per_row)
