"""C float32 arithmetic in numpy, one step at a time, so quantized bytes match llama.cpp exactly.

ggml's reference quantizers (``ggml-quants.c``) compute in float32 and round in a few specific
ways. Each helper here reproduces one of them bit for bit on whole arrays:

>>> import numpy as np
>>> nearest_int(np.float32([0.5, 1.5, -2.5])).tolist()          # ties go to the even integer
[0, 2, -2]
>>> round_half_away_from_zero(np.float32([0.5, 1.5, -2.5])).tolist()   # C roundf
[1.0, 2.0, -3.0]
>>> sequential_sum(np.float32([[1e8], [1.0], [-1e8]])).tolist()     # (0 + 1e8 + 1) - 1e8 in float32
[0.0]
"""

from __future__ import annotations

import numpy as np

_MAGIC_ROUNDING_CONSTANT = np.float32(12582912.0)  # 1.5 * 2**23
_NEAREST_INT_RANGE = np.float32(4194303.0)          # where ggml's nearest_int is exact
_INT32_MIN = np.int32(-(2**31))
_LIMIT = np.float32(2.0**31)
_LARGEST_BELOW_HALF = np.nextafter(np.float32(0.5), np.float32(0))


def nearest_int(values: np.ndarray) -> np.ndarray:
    """Round float32 values to int32 the way ggml's ``nearest_int`` does.

    ggml adds 1.5 * 2**23 and reads the low mantissa bits, which is round-half-to-even for
    |value| <= 4194303. Outside that range (which inf, NaN and overflowing scales reach) the C
    function returns meaningless bits, and this function returns the same bits, so that even
    degenerate blocks come out byte-identical.
    """
    shifted = (np.asarray(values, dtype=np.float32) + _MAGIC_ROUNDING_CONSTANT).view(np.int32)
    return (shifted & np.int32(0x007FFFFF)) - np.int32(0x00400000)


def nearest_int_float(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Return ``float(MAX(low, MIN(high, nearest_int(value))))`` for each value, in float32.

    This is the common case of :func:`nearest_int` and a clamp, done without integer arrays:
    for |value| <= 4194303, adding and subtracting 1.5 * 2**23 rounds half to even exactly.
    Arrays with larger values, inf or NaN take the bit-exact integer path.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.size and values.max() <= _NEAREST_INT_RANGE and values.min() >= -_NEAREST_INT_RANGE:
        rounded = values + _MAGIC_ROUNDING_CONSTANT
        rounded -= _MAGIC_ROUNDING_CONSTANT
    else:
        rounded = nearest_int(values).astype(np.float32)
    np.maximum(rounded, np.float32(low), out=rounded)
    np.minimum(rounded, np.float32(high), out=rounded)
    return rounded


def round_half_away_from_zero(values: np.ndarray) -> np.ndarray:
    """Round like C ``roundf``: halves go away from zero (numpy's ``rint`` sends them to even).

    Adding the largest float32 below 0.5 (with the value's sign) and truncating is exact: adding
    0.5 itself would round 0.49999997 up, because the sum 0.99999997 rounds to 1.0 in float32.
    """
    values = np.asarray(values, dtype=np.float32)
    return np.trunc(values + np.copysign(_LARGEST_BELOW_HALF, values))


def truncate_to_int(values: np.ndarray) -> np.ndarray:
    """Convert float32 to int32 like an x86-64 C cast ``(int)value``: toward zero.

    NaN and values outside the int32 range become INT32_MIN, which is what the ``cvttss2si``
    instruction returns. The Q4_0 and Q5_0 reference quantizers reach such values when a block's
    scale underflows (subnormal weights), and C then keeps the low byte of INT32_MIN, i.e. 0.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.size and _LIMIT > values.max() and values.min() > -_LIMIT:  # False if any NaN
        return values.astype(np.int32)
    in_range = np.abs(values) < _LIMIT
    safe = np.where(in_range, values, np.float32(0))
    return np.where(in_range, np.trunc(safe).astype(np.int32), _INT32_MIN)


def to_float16_and_back(values: np.ndarray) -> np.ndarray:
    """Round float32 values to the nearest float16 (ties to even) and widen them back to float32.

    This is what a scale goes through when the quantizer stores it (``GGML_FP32_TO_FP16``) and
    reads it back (``GGML_FP16_TO_FP32``) before quantizing the values against it.
    """
    return np.asarray(values, dtype=np.float32).astype(np.float16).astype(np.float32)


def sequential_sum(terms: np.ndarray, initial: np.ndarray | None = None) -> np.ndarray:
    """Sum ``terms`` along axis 0 in float32, left to right, like a C loop ``s += t``.

    ``np.sum`` adds pairwise and so rounds differently; here each step is one float32 addition.
    ``initial`` is the value the C loop starts from (``0.0f`` when omitted). The loop runs over
    axis 0 only, so keep that axis short (the position inside a block) and the others wide.

    >>> sequential_sum(np.float32([[1, 2], [3, 4]])).tolist()
    [4.0, 6.0]
    """
    total = np.zeros(terms.shape[1:], dtype=np.float32) if initial is None \
        else np.array(initial, dtype=np.float32)
    for term in terms:
        total += term
    return total
