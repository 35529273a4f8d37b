"""K-quants: Q4_K and Q6_K, 256-value super-blocks whose sub-block scales are quantized too.

A super-block holds 8 sub-blocks of 32 values (Q4_K) or 16 of 16 (Q6_K). Each sub-block gets
its own scale, found by a small search for the scale with the least weighted squared error,
and those scales are themselves stored as 6-bit (Q4_K) or 8-bit (Q6_K) integers against one
float16 super-scale. That is how Q4_K_M reaches 4.5 bits per weight with less error than Q4_0.

This module follows ``quantize_row_q4_K_ref`` and ``quantize_row_q6_K_ref`` of ggml's
``ggml-quants.c``, the code llama.cpp runs when no importance matrix is given. It is vectorised
across sub-blocks. Arrays are laid out position-major, with shape (positions, ..., sub-blocks), so
every float32 sum can run over the position inside a sub-block in C's order while each step works
on all sub-blocks at once. :mod:`labkit.quantize.kquants_reference` is the same algorithm written
for one super-block at a time, for reading.

>>> import numpy as np
>>> from labkit.quantize import quantize, dequantize
>>> x = np.sin(np.arange(256, dtype=np.float32))
>>> error = np.abs(dequantize(quantize(x, "Q4_K"), "Q4_K") - x).max()
>>> bool(error < 0.07), bool(np.abs(dequantize(quantize(x, "Q6_K"), "Q6_K") - x).max() < error)
(True, True)
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGMLQuantizationType

from labkit.quantize.formats import BlockFormat
from labkit.quantize.rounding import (nearest_int, nearest_int_float, sequential_sum,
                                      to_float16_and_back)

QK_K = 256
GROUP_MAX_EPS = np.float32(1e-15)  # below this, ggml treats a group of values as all zero

_F32 = np.float32


# ---------------------------------------------------------------------------------------------
# Scale searches (position-major arrays: axis 0 is the position inside a sub-block)
# ---------------------------------------------------------------------------------------------

def make_qkx2_quants(x: np.ndarray, weights: np.ndarray, nmax: int, rmin: float, rdelta: float,
                     nstep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Search an asymmetric scale and minimum for each sub-block: x ~ scale * L - the_min.

    ``x`` and ``weights`` have shape (n, m): n positions of m sub-blocks. The search starts from
    the scale that maps [min, max] onto [0, nmax]. It then tries ``nstep + 1`` candidate scales
    (nmax + rmin + rdelta * i) / (max - min) and fits scale and minimum to each candidate's
    integers by weighted least squares. A candidate is kept when its weighted squared error is
    lower than the best so far.

    The candidates cannot all be evaluated at once: as in the C loop, an accepted candidate's
    minimum replaces ``min``, and later candidates are computed from the new minimum.

    Returns ``(L, scale, the_min)``: integers in [0, nmax] of shape (n, m), and two (m,) arrays.
    """
    low = start_low = np.minimum(x.min(axis=0), _F32(0))
    high = x.max(axis=0)
    sum_w = sequential_sum(weights[1:], initial=weights[0])
    sum_x = sequential_sum((weights * x)[1:], initial=weights[0] * x[0])
    flat = high == low                              # C returns scale 0 and L = 0 for these
    high = np.where(flat, low + _F32(1), high)      # any non-zero range; the result is replaced

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = _F32(nmax) / (high - low)
        scale = _F32(1) / iscale
        levels = nearest_int_float(iscale * (x - low), 0, nmax)
        diff = scale * levels + low - x
        best_error = sequential_sum(weights * (diff * diff))

        for step in range(nstep + 1):
            factor = _F32(rmin) + _F32(rdelta) * _F32(step) + _F32(nmax)
            iscale = factor / (high - low)
            candidate = nearest_int_float(iscale * (x - low), 0, nmax)
            weighted = weights * candidate                                   # w*l
            sum_l = sequential_sum(weighted)
            sum_l2 = sequential_sum(weighted * candidate)                    # (w*l)*l
            sum_xl = sequential_sum(weighted * x)                            # (w*l)*x

            determinant = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / determinant
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / determinant
            positive_min = this_min > 0
            this_min = np.where(positive_min, _F32(0), this_min)
            this_scale = np.where(positive_min, sum_xl / sum_l2, this_scale)
            diff = this_scale * candidate + this_min - x
            error = sequential_sum(weights * (diff * diff))

            better = (determinant > 0) & (error < best_error)
            levels = np.where(better, candidate, levels)
            best_error = np.where(better, error, best_error)
            scale = np.where(better, this_scale, scale)
            low = np.where(better, this_min, low)

    levels = np.where(flat, _F32(0), levels)
    scale = np.where(flat, _F32(0), scale)
    low = np.where(flat, start_low, low)
    return levels, scale, -low


def make_qx_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Search a symmetric scale per sub-block with weights x², as ggml's rmse_type 1.

    ``x`` has shape (n, m). The value of largest magnitude is mapped to -nmax, then 18 nearby
    scales -(nmax + 0.1 i) / max for i = -9..9 are tried; the weighted least-squares scale of
    the best candidate wins. Returns ``(L, scale)`` with L = l + nmax in [0, 2 nmax - 1].
    """
    index = np.abs(x).argmax(axis=0)                 # first position of the largest |x|
    max_value = x[index, np.arange(x.shape[1])]
    tiny = np.abs(max_value) < GROUP_MAX_EPS
    max_value = np.where(tiny, _F32(1), max_value)
    weights = x * x

    def levels_for(iscale):
        return nearest_int_float(iscale * x[:, None, :], -nmax, nmax - 1)

    # The first candidate and the 18 alternatives go through the same arithmetic, so they share
    # one array whose axis 1 is the candidate, in C's order (i = 0 first, then -9..-1, 1..9).
    steps = [0] + [i for i in range(-9, 10) if i != 0]
    factors = np.array([-_F32(nmax)] + [-(_F32(nmax) + _F32(0.1) * _F32(i)) for i in steps[1:]],
                       dtype=_F32)
    candidates = levels_for(factors[:, None] / max_value)                     # (n, steps, m)
    sumlx = sequential_sum((weights * x)[:, None, :] * candidates)            # (w*x)*l
    suml2 = sequential_sum(weights[:, None, :] * candidates * candidates)     # (w*l)*l

    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(suml2[0] != 0, sumlx[0] / np.where(suml2[0] != 0, suml2[0], _F32(1)),
                         _F32(0))
        best = scale * sumlx[0]
        chosen = np.zeros(x.shape[1], dtype=np.int64)
        for step in range(1, len(steps)):
            better = (suml2[step] > 0) & (sumlx[step] * sumlx[step] > best * suml2[step])
            scale = np.where(better, sumlx[step] / suml2[step], scale)
            best = np.where(better, scale * sumlx[step], best)
            chosen = np.where(better, step, chosen)

    levels = candidates[:, chosen, np.arange(x.shape[1])] + _F32(nmax)
    levels = np.where(tiny, _F32(0), levels)
    scale = np.where(tiny, _F32(0), scale)
    return levels, scale


def _positive_max(values: np.ndarray, axis: int) -> np.ndarray:
    """``float m = 0; for (...) if (v > m) m = v;``: the largest value, or +0 if none is positive.

    NaN never compares greater, so it is skipped (a scale search on huge values can produce it).
    """
    largest = np.where(np.isnan(values), _F32(0), values).max(axis=axis)
    return np.where(largest > 0, largest, _F32(0))


# ---------------------------------------------------------------------------------------------
# Q4_K
# ---------------------------------------------------------------------------------------------

class Q4_K(BlockFormat):
    ggml_type = GGMLQuantizationType.Q4_K
    block_size = QK_K
    layout = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", QK_K // 2)])
    summary = ("d, dmin: f16 super-scales; scales: 8 x (6-bit scale, 6-bit min) packed in 12 bytes; "
               "qs: 4-bit q; x = d*sc*q - dmin*m per sub-block of 32")
    chunk_blocks = 512

    def quantize_blocks(self, blocks):
        n = len(blocks)
        x = np.ascontiguousarray(blocks.reshape(n * 8, 32).T)       # (32 positions, 8n sub-blocks)

        # Weights favour large values but never vanish: sqrt(mean(x²)) + |x|.
        average = np.sqrt(sequential_sum(x * x) / _F32(32))
        weights = average + np.abs(x)
        levels, scales, mins = make_qkx2_quants(x, weights, nmax=15, rmin=-1.0, rdelta=0.1, nstep=20)

        # Quantize the 8 scales and 8 minimums of each super-block to 6 bits.
        scales = scales.reshape(n, 8)
        mins = mins.reshape(n, 8)
        max_scale = _positive_max(scales, axis=1)[:, None]
        max_min = _positive_max(mins, axis=1)[:, None]
        with np.errstate(divide="ignore"):
            inv_scale = np.where(max_scale > 0, _F32(63) / max_scale, _F32(0))
            inv_min = np.where(max_min > 0, _F32(63) / max_min, _F32(0))
        # C stores nearest_int's result in a uint8_t before MIN(63, ...): keep the low byte.
        scale_codes = np.minimum(63, nearest_int(inv_scale * scales) & 0xFF)
        min_codes = np.minimum(63, nearest_int(inv_min * mins) & 0xFF)

        out = np.empty(n, dtype=self.layout)
        out["d"] = (max_scale / _F32(63))[:, 0]
        out["dmin"] = (max_min / _F32(63))[:, 0]
        out["scales"] = pack_q4_k_scales(scale_codes, min_codes)

        # Quantize again against the scales as stored; a sub-block whose stored scale is 0
        # keeps the integers of the search.
        d = to_float16_and_back(out["d"])[:, None] * scale_codes.astype(_F32)     # (n, 8)
        dm = to_float16_and_back(out["dmin"])[:, None] * min_codes.astype(_F32)
        d = d.reshape(1, -1)
        dm = dm.reshape(1, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            requantized = nearest_int_float((x + dm) / d, 0, 15)
        levels = np.where(d != 0, requantized, levels)

        out["qs"] = pack_q4_k_values(levels.T.reshape(n, QK_K).astype(np.uint8))
        return out

    def dequantize_blocks(self, records):
        n = len(records)
        scale_codes, min_codes = unpack_q4_k_scales(records["scales"])
        d = records["d"].astype(_F32)[:, None] * scale_codes.astype(_F32)          # (n, 8)
        dm = records["dmin"].astype(_F32)[:, None] * min_codes.astype(_F32)
        q = unpack_q4_k_values(records["qs"]).reshape(n, 8, 32).astype(_F32)
        return (d[:, :, None] * q - dm[:, :, None]).reshape(n, QK_K)


def pack_q4_k_scales(scale_codes: np.ndarray, min_codes: np.ndarray) -> np.ndarray:
    """Pack 8 six-bit scales and 8 six-bit minimums per super-block into 12 bytes.

    Bytes 0-3 hold scales 0-3 in their low 6 bits, and bytes 4-7 hold minimums 0-3. Bytes 8-11
    hold the low 4 bits of scales 4-7 (low nibble) and of minimums 4-7 (high nibble). The top 2
    bits of scales 4-7 sit in the top 2 bits of bytes 0-3, those of minimums 4-7 in bytes 4-7.
    """
    sc = scale_codes.astype(np.uint8)
    mn = min_codes.astype(np.uint8)
    packed = np.empty((len(sc), 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = mn[:, 0:4] | ((mn[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((mn[:, 4:8] & 0x0F) << 4)
    return packed


def unpack_q4_k_scales(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_q4_k_scales`: (scale codes, minimum codes), each (n, 8)."""
    first, second, third = packed[:, 0:4], packed[:, 4:8], packed[:, 8:12]
    scale_codes = np.concatenate([first & 63, (third & 0x0F) | ((first >> 6) << 4)], axis=1)
    min_codes = np.concatenate([second & 63, (third >> 4) | ((second >> 6) << 4)], axis=1)
    return scale_codes, min_codes


def pack_q4_k_values(levels: np.ndarray) -> np.ndarray:
    """Pack 256 4-bit values: each 32-byte group holds two sub-blocks, low nibble first."""
    groups = levels.reshape(-1, 4, 2, 32)
    return (groups[:, :, 0, :] | (groups[:, :, 1, :] << 4)).reshape(-1, QK_K // 2)


def unpack_q4_k_values(qs: np.ndarray) -> np.ndarray:
    groups = qs.reshape(-1, 4, 1, 32)
    return np.concatenate([groups & 0x0F, groups >> 4], axis=2).reshape(-1, QK_K)


# ---------------------------------------------------------------------------------------------
# Q6_K
# ---------------------------------------------------------------------------------------------

class Q6_K(BlockFormat):
    ggml_type = GGMLQuantizationType.Q6_K
    block_size = QK_K
    layout = np.dtype([("ql", "u1", QK_K // 2), ("qh", "u1", QK_K // 4), ("scales", "i1", 16),
                       ("d", "<f2")])
    summary = ("ql: low 4 bits, qh: high 2 bits of 256 6-bit q; scales: 16 x int8; d: f16 (last); "
               "x = d*scale*(q - 32) per sub-block of 16")
    chunk_blocks = 128

    def quantize_blocks(self, blocks):
        n = len(blocks)
        x = np.ascontiguousarray(blocks.reshape(n * 16, 16).T)     # (16 positions, 16n sub-blocks)
        levels, scales = make_qx_quants(x, nmax=32)
        scales = scales.reshape(n, 16)

        # The sub-block scale of largest magnitude (the first one on ties) sets the super-scale;
        # like C's strict comparison, NaN scales never win.
        magnitude = np.where(np.isnan(scales), _F32(-1), np.abs(scales))
        largest = np.take_along_axis(scales, magnitude.argmax(axis=1)[:, None], axis=1)
        all_zero = ~(magnitude.max(axis=1) >= GROUP_MAX_EPS)
        largest = np.where(all_zero[:, None], _F32(1), largest)
        iscale = _F32(-128) / largest
        scale_codes = np.minimum(127, nearest_int(iscale * scales))
        scale_codes = ((scale_codes + 128) & 0xFF) - 128            # stored as int8_t

        out = np.empty(n, dtype=self.layout)
        out["d"] = (_F32(1) / iscale)[:, 0]
        out["scales"] = scale_codes

        # Quantize again against the stored scales; a zero scale keeps the search's integers.
        d = (to_float16_and_back(out["d"])[:, None] * scale_codes.astype(_F32)).reshape(1, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            requantized = nearest_int_float(x / d, -32, 31) + _F32(32)
        levels = np.where(d != 0, requantized, levels)

        out["ql"], out["qh"] = pack_q6_k_values(levels.T.reshape(n, QK_K).astype(np.uint8))
        # An all-zero super-block is 210 zero bytes (C memsets it).
        out[all_zero] = np.zeros(1, dtype=self.layout)
        return out

    def dequantize_blocks(self, records):
        n = len(records)
        q = unpack_q6_k_values(records["ql"], records["qh"]).astype(np.int32) - 32
        d = records["d"].astype(_F32)[:, None] * records["scales"].astype(_F32)    # (n, 16)
        return (d[:, :, None] * q.reshape(n, 16, 16).astype(_F32)).reshape(n, QK_K)


def pack_q6_k_values(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split 256 6-bit values into low nibbles (ql) and 2-bit high parts (qh).

    Each half of 128 values is four quarters of 32: ql packs quarters 0 and 2 into one 32-byte
    row and quarters 1 and 3 into the next, and qh packs the high bits of all four quarters.
    """
    quarters = levels.reshape(-1, 2, 4, 32)
    low = quarters & 0x0F
    high = quarters >> 4
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)],
                        axis=2)
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    return ql.reshape(-1, QK_K // 2), qh.reshape(-1, QK_K // 4)


def unpack_q6_k_values(ql: np.ndarray, qh: np.ndarray) -> np.ndarray:
    ql = ql.reshape(-1, 2, 2, 32)
    qh = qh.reshape(-1, 2, 1, 32)
    low = np.stack([ql[:, :, 0] & 0x0F, ql[:, :, 1] & 0x0F, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4],
                   axis=2)
    high = (qh >> np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]) & 0x03
    return (low | (high << 4)).reshape(-1, QK_K)
