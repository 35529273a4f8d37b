"""The 32-value block formats (llama.cpp calls them "legacy quants"): Q8_0, Q4_0, Q4_1, Q5_0.

Each block stores one float16 scale ``d`` (Q4_1 also a float16 offset ``m``) and 32 small
integers ``q``. A value comes back as ``q * d`` (plus ``m``). The quantizers follow
``quantize_row_*_ref`` in ggml's ``ggml-quants.c`` step for step, vectorised across blocks.

>>> import numpy as np
>>> from labkit.quantize import quantize
>>> block = np.arange(-16, 16, dtype=np.float32)
>>> record = quantize(block, "Q8_0").view(get_format("Q8_0").layout)[0]
>>> float(record["d"]), record["qs"][:3].tolist()       # d = max|x| / 127
(0.1259765625, [-127, -119, -111])
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGMLQuantizationType

from labkit.quantize.formats import BlockFormat, get_format
from labkit.quantize.rounding import round_half_away_from_zero, truncate_to_int

QK = 32  # values per block in every format of this module


def _low_byte_as_int8(values: np.ndarray) -> np.ndarray:
    """Keep the low byte of int32 values as a signed byte, like a C cast to ``int8_t``."""
    return values.astype(np.int8)


def _value_with_max_magnitude(blocks: np.ndarray) -> np.ndarray:
    """Return, per block, the first value whose |value| is largest, sign kept (shape (n, 1)).

    C starts from ``max = 0.0f`` and replaces it only on a strictly larger |value|, so a block of
    zeros gives +0.0 even when its zeros are negative (the sign reaches the stored scale).
    """
    index = np.abs(blocks).argmax(axis=1)[:, None]
    found = np.take_along_axis(blocks, index, axis=1)
    return np.where(found == 0, np.float32(0), found)


def _inverse_or_zero(d: np.ndarray) -> np.ndarray:
    """``d ? 1.0f/d : 0.0f``: 1/d may overflow to inf for a subnormal d, as it does in C."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)), np.float32(0))


def _split_nibbles(qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low nibbles hold the first 16 values of a block, high nibbles the last 16."""
    return (qs & 0x0F).astype(np.int32), (qs >> 4).astype(np.int32)


class Q8_0(BlockFormat):
    ggml_type = GGMLQuantizationType.Q8_0
    block_size = QK
    layout = np.dtype([("d", "<f2"), ("qs", "i1", QK)])
    summary = "d: f16 scale, qs: 32 x int8; x = qs * d"

    def quantize_blocks(self, blocks):
        amax = np.abs(blocks).max(axis=1, keepdims=True)
        d = amax / np.float32(127)
        scaled = blocks * _inverse_or_zero(d)

        out = np.empty(len(blocks), dtype=self.layout)
        out["d"] = d[:, 0]  # the float32 scale quantizes; only the stored one is rounded to f16
        with np.errstate(invalid="ignore"):
            out["qs"] = _low_byte_as_int8(truncate_to_int(round_half_away_from_zero(scaled)))
        return out

    def dequantize_blocks(self, records):
        return records["qs"].astype(np.float32) * records["d"].astype(np.float32)[:, None]


class Q4_0(BlockFormat):
    ggml_type = GGMLQuantizationType.Q4_0
    block_size = QK
    layout = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])
    summary = "d: f16 scale, qs: 16 bytes of 4-bit q (low nibbles = values 0-15); x = (q - 8) * d"

    def quantize_blocks(self, blocks):
        # The value of largest magnitude maps to q = 0 (d = max / -8), so its sign is kept exactly.
        d = _value_with_max_magnitude(blocks) / np.float32(-8)
        scaled = blocks * _inverse_or_zero(d)
        with np.errstate(invalid="ignore"):
            q = np.minimum(15, _low_byte_as_int8(truncate_to_int(scaled + np.float32(8.5)))).astype(np.uint8)

        out = np.empty(len(blocks), dtype=self.layout)
        out["d"] = d[:, 0]
        out["qs"] = q[:, :16] | (q[:, 16:] << 4)
        return out

    def dequantize_blocks(self, records):
        low, high = _split_nibbles(records["qs"])
        q = np.concatenate([low, high], axis=1) - 8
        return q.astype(np.float32) * records["d"].astype(np.float32)[:, None]


class Q4_1(BlockFormat):
    ggml_type = GGMLQuantizationType.Q4_1
    block_size = QK
    layout = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", QK // 2)])
    summary = "d: f16 scale, m: f16 minimum, qs: 16 bytes of 4-bit q; x = q * d + m"

    def quantize_blocks(self, blocks):
        # argmin/argmax give the first extreme value, as C's strict comparisons do. That decides
        # the sign of a zero minimum, which ends up in m's sign bit.
        low = np.take_along_axis(blocks, blocks.argmin(axis=1)[:, None], axis=1)
        high = np.take_along_axis(blocks, blocks.argmax(axis=1)[:, None], axis=1)
        d = (high - low) / np.float32(15)
        scaled = (blocks - low) * _inverse_or_zero(d)
        with np.errstate(invalid="ignore"):
            q = np.minimum(15, _low_byte_as_int8(truncate_to_int(scaled + np.float32(0.5)))).astype(np.uint8)

        out = np.empty(len(blocks), dtype=self.layout)
        out["d"] = d[:, 0]
        out["m"] = low[:, 0]
        out["qs"] = q[:, :16] | (q[:, 16:] << 4)
        return out

    def dequantize_blocks(self, records):
        low, high = _split_nibbles(records["qs"])
        q = np.concatenate([low, high], axis=1).astype(np.float32)
        return q * records["d"].astype(np.float32)[:, None] + records["m"].astype(np.float32)[:, None]


class Q5_0(BlockFormat):
    ggml_type = GGMLQuantizationType.Q5_0
    block_size = QK
    layout = np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", QK // 2)])
    summary = ("d: f16 scale, qh: 32 fifth bits (bit j = value j), qs: 16 bytes of low nibbles; "
               "x = (q - 16) * d")

    def quantize_blocks(self, blocks):
        d = _value_with_max_magnitude(blocks) / np.float32(-16)
        scaled = blocks * _inverse_or_zero(d)
        with np.errstate(invalid="ignore"):
            q = np.minimum(31, _low_byte_as_int8(truncate_to_int(scaled + np.float32(16.5)))).astype(np.uint8)

        fifth_bits = ((q >> 4) & 1).astype(np.uint32) << np.arange(QK, dtype=np.uint32)
        out = np.empty(len(blocks), dtype=self.layout)
        out["d"] = d[:, 0]
        out["qh"] = np.bitwise_or.reduce(fifth_bits, axis=1)
        out["qs"] = (q[:, :16] & 0x0F) | ((q[:, 16:] & 0x0F) << 4)
        return out

    def dequantize_blocks(self, records):
        low, high = _split_nibbles(records["qs"])
        fifth_bits = (records["qh"][:, None] >> np.arange(QK, dtype=np.uint32)) & 1
        q = np.concatenate([low, high], axis=1) | (fifth_bits.astype(np.int32) << 4)
        return (q - 16).astype(np.float32) * records["d"].astype(np.float32)[:, None]


__all__ = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "get_format"]
