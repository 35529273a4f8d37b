"""The C rounding helpers, checked against hand-worked values and the C definitions."""

from __future__ import annotations

import struct

import numpy as np

from labkit.quantize.rounding import (nearest_int, nearest_int_float, round_half_away_from_zero,
                                      sequential_sum, to_float16_and_back, truncate_to_int)


def c_nearest_int(value: float) -> int:
    """ggml's nearest_int, transcribed with struct: add 1.5 * 2**23 in float32, read the bits."""
    shifted = struct.unpack("<f", struct.pack("<f", np.float32(value) + np.float32(12582912.0)))[0]
    bits = struct.unpack("<i", struct.pack("<f", shifted))[0]
    return (bits & 0x007FFFFF) - 0x00400000


def test_nearest_int_ties_to_even():
    values = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999998, 3.0000002])
    assert nearest_int(values).tolist() == [0, 2, 2, 0, -2, 2, 3]


def test_nearest_int_out_of_range_matches_c_bits():
    values = np.float32([5e6, -5e6, 1e30, 4194304.0, np.inf, -np.inf])
    assert nearest_int(values).tolist() == [c_nearest_int(v) for v in values]


def test_nearest_int_float_clamps():
    values = np.float32([-3.5, -0.5, 7.5, 20.0, 1e30, np.nan])
    assert nearest_int_float(values, 0, 15).tolist() == [
        max(0, min(15, c_nearest_int(v))) for v in values]


def test_round_half_away_from_zero_like_roundf():
    values = np.float32([0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997, 126.5, 8388607.5])
    assert round_half_away_from_zero(values).tolist() == [1, 2, 3, -1, -3, 0, -0.0, 127, 8388608]


def test_round_half_away_from_zero_on_every_quarter():
    values = np.arange(-1024, 1024, dtype=np.float32) / np.float32(4)
    expected = [np.sign(v) * np.floor(abs(float(v)) + 0.5) for v in values]
    assert round_half_away_from_zero(values).tolist() == expected


def test_truncate_to_int_like_x86_cast():
    values = np.float32([2.9, -2.9, 3e9, -3e9, np.nan, np.inf])
    assert truncate_to_int(values).tolist() == [2, -2, -2**31, -2**31, -2**31, -2**31]


def test_sequential_sum_runs_left_to_right():
    # (0 + 1e8) + 1 rounds back to 1e8 in float32, so the 1 is lost; pairwise summation keeps it.
    terms = np.float32([[1e8], [1.0], [-1e8], [1.0]])
    assert sequential_sum(terms).tolist() == [1.0]
    assert sequential_sum(terms[1:], initial=terms[0]).tolist() == [1.0]


def test_sequential_sum_of_negative_zeros_is_positive_zero():
    total = sequential_sum(np.float32([[-0.0], [-0.0]]))
    assert np.signbit(total).tolist() == [False]


def test_float16_round_trip_ties_to_even():
    # 1 + 2**-11 lies halfway between two float16 values; the even one is 1.0.
    values = np.float32([1 + 2**-11, 1 + 3 * 2**-11, 70000.0, 1e-8])
    assert to_float16_and_back(values).tolist() == [1.0, 1 + 2**-9, np.inf, 0.0]
