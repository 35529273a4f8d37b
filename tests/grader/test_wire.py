"""The JSON encoding of values between the grader and a notebook process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labkit.grading import wire


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2**80, 1.5, "héllo 👋", b"\x00\xff", [], (), (1, (2, 3)),
    {"a": 1}, {(101, 32): 256}, {1: "one"}, {"__dict__": 1}, {1, 2},
    [b"a", (b"b", [1.0])], {"nested": {"keys": [(1, 2)]}},
])
def test_round_trip(value):
    data = wire.loads(wire.dumps({"v": wire.encode_value(value)}))["v"]
    assert wire.decode_value(data) == value
    assert type(wire.decode_value(data)) is type(value)


def test_special_floats():
    values = [math.inf, -math.inf]
    assert wire.decode_value(wire.loads(wire.dumps({"v": wire.encode_value(values)}))["v"]) == values
    assert math.isnan(wire.decode_value(wire.encode_value(math.nan)))


def test_numpy_becomes_plain_values():
    assert wire.encode_value(np.arange(3, dtype=np.int32)) == [0, 1, 2]
    assert wire.encode_value(np.float32(0.5)) == 0.5
    assert wire.encode_value([np.int64(7)]) == [7]


def test_unknown_type_needs_keep():
    with pytest.raises(wire.WireError, match="object"):
        wire.encode_value(object())
    kept = []
    data = wire.encode_value([object()], keep=lambda value: kept.append(value) or wire.Handle(1, "object"))
    assert wire.decode_value(data) == [wire.Handle(1, "object")]
    assert len(kept) == 1


def test_deep_nesting_rejected():
    value: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        value = [value]
    with pytest.raises(wire.WireError, match="nested"):
        wire.encode_value(value)
    data = wire.encode_value(1)
    for _ in range(wire.MAX_DEPTH + 5):
        data = [data]
    with pytest.raises(wire.WireError, match="nested"):
        wire.decode_value(data)


@pytest.mark.parametrize("line", ["not json", "[1, 2]", '"text"'])
def test_invalid_message_rejected(line):
    with pytest.raises(wire.WireError):
        wire.loads(line)


def test_unhashable_key_rejected():
    with pytest.raises(wire.WireError, match="key"):
        wire.decode_value({"__dict__": [[{"a": 1}, 2]]})
