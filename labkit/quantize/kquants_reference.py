"""Q4_K and Q6_K one super-block at a time: the readable twin of :mod:`labkit.quantize.kquants`.

Same algorithm, same API (``quantize_blocks`` / ``dequantize_blocks``), same bytes, but written
as plain loops over numpy float32 scalars in the order of ggml's C code, so it can be read next
to ``quantize_row_q4_K_ref`` and ``quantize_row_q6_K_ref``. It is about a thousand times slower
than the vectorised version; tests run both on the same blocks.

>>> import numpy as np
>>> from labkit.quantize import get_format
>>> x = np.cos(np.arange(256, dtype=np.float32))[None, :]
>>> fast, slow = get_format("Q4_K"), Q4_KReference()
>>> fast.quantize_blocks(x).tobytes() == slow.quantize_blocks(x).tobytes()
True
"""

from __future__ import annotations

import numpy as np

from labkit.quantize.kquants import GROUP_MAX_EPS, Q4_K, Q6_K, QK_K
from labkit.quantize.rounding import nearest_int as _nearest_int_array

f32 = np.float32


def nearest_int(value: np.float32) -> int:
    return int(_nearest_int_array(np.float32(value)))


def fp16_round_trip(value: np.float32) -> np.float32:
    return f32(np.float16(value))


def make_qkx2_quants(x, weights, nmax, rmin, rdelta, nstep):
    """Asymmetric scale search for one sub-block; returns (L, scale, the_min)."""
    n = len(x)
    low = x[0]
    high = x[0]
    sum_w = weights[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < low:
            low = x[i]
        if x[i] > high:
            high = x[i]
        sum_w += weights[i]
        sum_x += weights[i] * x[i]
    if low > 0:
        low = f32(0)
    if high == low:
        return [0] * n, f32(0), -low

    iscale = f32(nmax) / (high - low)
    scale = f32(1) / iscale
    levels = [min(nmax, max(0, nearest_int(iscale * (x[i] - low)))) for i in range(n)]
    best_error = f32(0)
    for i in range(n):
        diff = scale * f32(levels[i]) + low - x[i]
        best_error += weights[i] * (diff * diff)

    for step in range(nstep + 1):
        iscale = (f32(rmin) + f32(rdelta) * f32(step) + f32(nmax)) / (high - low)
        candidate = [min(nmax, max(0, nearest_int(iscale * (x[i] - low)))) for i in range(n)]
        sum_l = sum_l2 = sum_xl = f32(0)
        for i in range(n):
            wl = weights[i] * f32(candidate[i])
            sum_l += wl
            sum_l2 += wl * f32(candidate[i])
            sum_xl += wl * x[i]
        determinant = sum_w * sum_l2 - sum_l * sum_l
        if determinant > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / determinant
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / determinant
            if this_min > 0:
                this_min = f32(0)
                this_scale = sum_xl / sum_l2
            error = f32(0)
            for i in range(n):
                diff = this_scale * f32(candidate[i]) + this_min - x[i]
                error += weights[i] * (diff * diff)
            if error < best_error:
                levels, best_error, scale, low = candidate, error, this_scale, this_min
    return levels, scale, -low


def make_qx_quants(x, nmax):
    """Symmetric scale search for one sub-block with weights x² (rmse_type 1); returns (L, scale)."""
    n = len(x)
    amax = f32(0)
    max_value = f32(0)
    for value in x:
        if abs(value) > amax:
            amax, max_value = abs(value), value
    if amax < GROUP_MAX_EPS:
        return [0] * n, f32(0)

    def try_scale(iscale):
        levels = [max(-nmax, min(nmax - 1, nearest_int(iscale * x[i]))) for i in range(n)]
        sumlx = suml2 = f32(0)
        for i in range(n):
            w = x[i] * x[i]
            sumlx += w * x[i] * f32(levels[i])
            suml2 += w * f32(levels[i]) * f32(levels[i])
        return levels, sumlx, suml2

    levels, sumlx, suml2 = try_scale(f32(-nmax) / max_value)
    scale = sumlx / suml2 if suml2 else f32(0)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        candidate, sumlx, suml2 = try_scale(-(f32(nmax) + f32(0.1) * f32(step)) / max_value)
        if suml2 > 0 and sumlx * sumlx > best * suml2:
            levels = candidate
            scale = sumlx / suml2
            best = scale * sumlx
    return [level + nmax for level in levels], scale


def quantize_q4_k_block(x: np.ndarray) -> np.void:
    record = np.zeros((), dtype=Q4_K.layout)
    levels = [0] * QK_K
    scales = [f32(0)] * 8
    mins = [f32(0)] * 8
    max_scale = max_min = f32(0)
    for j in range(8):
        sub = x[32 * j:32 * j + 32]
        sum_x2 = f32(0)
        for value in sub:
            sum_x2 += value * value
        average = np.sqrt(sum_x2 / f32(32))
        weights = [average + abs(value) for value in sub]
        levels[32 * j:32 * j + 32], scales[j], mins[j] = make_qkx2_quants(sub, weights, 15, -1.0, 0.1, 20)
        if scales[j] > max_scale:
            max_scale = scales[j]
        if mins[j] > max_min:
            max_min = mins[j]

    inv_scale = f32(63) / max_scale if max_scale > 0 else f32(0)
    inv_min = f32(63) / max_min if max_min > 0 else f32(0)
    packed = [0] * 12
    scale_codes, min_codes = [], []
    for j in range(8):
        ls = min(63, nearest_int(inv_scale * scales[j]) & 0xFF)
        lm = min(63, nearest_int(inv_min * mins[j]) & 0xFF)
        scale_codes.append(ls)
        min_codes.append(lm)
        if j < 4:
            packed[j] = ls
            packed[j + 4] = lm
        else:
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            packed[j - 4] |= (ls >> 4) << 6
            packed[j] |= (lm >> 4) << 6
    record["d"] = max_scale / f32(63)
    record["dmin"] = max_min / f32(63)
    record["scales"] = packed

    for j in range(8):
        d = fp16_round_trip(record["d"]) * f32(scale_codes[j])
        if not d:
            continue
        dm = fp16_round_trip(record["dmin"]) * f32(min_codes[j])
        for i in range(32):
            levels[32 * j + i] = max(0, min(15, nearest_int((x[32 * j + i] + dm) / d)))

    qs = [0] * 128
    for group in range(4):
        for i in range(32):
            qs[32 * group + i] = levels[64 * group + i] | (levels[64 * group + 32 + i] << 4)
    record["qs"] = qs
    return record


def quantize_q6_k_block(x: np.ndarray) -> np.void:
    record = np.zeros((), dtype=Q6_K.layout)
    levels = [0] * QK_K
    scales = [f32(0)] * 16
    max_scale = max_abs_scale = f32(0)
    for j in range(16):
        levels[16 * j:16 * j + 16], scales[j] = make_qx_quants(x[16 * j:16 * j + 16], 32)
        if abs(scales[j]) > max_abs_scale:
            max_abs_scale, max_scale = abs(scales[j]), scales[j]
    if max_abs_scale < GROUP_MAX_EPS:
        return record                                   # 210 zero bytes

    iscale = f32(-128) / max_scale
    record["d"] = f32(1) / iscale
    codes = [min(127, nearest_int(iscale * scales[j])) for j in range(16)]
    record["scales"] = [((code + 128) & 0xFF) - 128 for code in codes]
    for j in range(16):
        d = fp16_round_trip(record["d"]) * f32(record["scales"][j])
        if not d:
            continue
        for i in range(16):
            levels[16 * j + i] = max(-32, min(31, nearest_int(x[16 * j + i] / d))) + 32

    ql = [0] * 128
    qh = [0] * 64
    for half in range(2):
        base = 128 * half
        for i in range(32):
            q1, q2, q3, q4 = (levels[base + i + 32 * k] for k in range(4))
            ql[64 * half + i] = (q1 & 0xF) | ((q3 & 0xF) << 4)
            ql[64 * half + i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
            qh[32 * half + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    record["ql"] = ql
    record["qh"] = qh
    return record


def dequantize_q4_k_block(record: np.void) -> np.ndarray:
    out = np.empty(QK_K, dtype=f32)
    packed = [int(b) for b in record["scales"]]
    d, dmin = f32(record["d"]), f32(record["dmin"])
    for j in range(8):
        if j < 4:
            sc, m = packed[j] & 63, packed[j + 4] & 63
        else:
            sc = (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4)
            m = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4)
        scale, offset = d * f32(sc), dmin * f32(m)
        for i in range(32):
            byte = int(record["qs"][32 * (j // 2) + i])
            q = byte & 0xF if j % 2 == 0 else byte >> 4
            out[32 * j + i] = scale * f32(q) - offset
    return out


def dequantize_q6_k_block(record: np.void) -> np.ndarray:
    out = np.empty(QK_K, dtype=f32)
    d = f32(record["d"])
    for position in range(QK_K):
        half, rest = divmod(position, 128)
        quarter, i = divmod(rest, 32)
        byte = int(record["ql"][64 * half + 32 * (quarter % 2) + i])
        low = byte & 0xF if quarter < 2 else byte >> 4
        high = (int(record["qh"][32 * half + i]) >> (2 * quarter)) & 3
        q = (low | (high << 4)) - 32
        out[position] = d * f32(record["scales"][position // 16]) * f32(q)
    return out


class Q4_KReference(Q4_K, register=False):
    """Q4_K, one super-block at a time."""

    def quantize_blocks(self, blocks):
        return np.array([quantize_q4_k_block(block) for block in blocks], dtype=self.layout)

    def dequantize_blocks(self, records):
        return np.array([dequantize_q4_k_block(record) for record in records], dtype=f32)


class Q6_KReference(Q6_K, register=False):
    """Q6_K, one super-block at a time."""

    def quantize_blocks(self, blocks):
        return np.array([quantize_q6_k_block(block) for block in blocks], dtype=self.layout)

    def dequantize_blocks(self, records):
        return np.array([dequantize_q6_k_block(record) for record in records], dtype=f32)
