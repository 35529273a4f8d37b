"""Values that cross the pipe between the grader and a student's notebook process.

The grader never unpickles anything a student's process sends, because unpickling can run code.
Values travel as JSON instead, with tags for the Python types JSON lacks, so a round trip keeps
``bytes``, ``tuple``, ``set`` and dictionaries whose keys are not strings:

>>> encode_value({(101, 32): 256, "pad": b"\\x00"})
{'__dict__': [[{'__tuple__': [101, 32]}, 256], ['pad', {'__bytes__': '00'}]]}
>>> decode_value(encode_value({(101, 32): 256}))
{(101, 32): 256}

A value the encoding cannot carry (a function, a socket, a client object) is kept in the student's
process and sent as a :class:`Handle`, which the grader can pass back as an argument.
numpy arrays and scalars become lists and Python numbers: the checks compare values, not types.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

# Deeply nested values (a list inside a list ... 10 000 times) would exhaust the grader's stack.
MAX_DEPTH = 64


class WireError(ValueError):
    """A value could not be encoded or decoded for the pipe."""


@dataclass(frozen=True)
class Handle:
    """A value kept in the student's process, named by a number, with its type for messages."""

    id: int
    type_name: str

    def __repr__(self) -> str:
        return f"<{self.type_name} in the notebook process>"


def _float_tag(value: float) -> Any:
    if math.isnan(value):
        return {"__float__": "nan"}
    if math.isinf(value):
        return {"__float__": "inf" if value > 0 else "-inf"}
    return value


def encode_value(value: Any, keep: Callable[[Any], Handle] | None = None, _depth: int = 0) -> Any:
    """Turn ``value`` into JSON-ready data; values JSON cannot carry go to ``keep`` as handles.

    Without ``keep`` such a value raises :class:`WireError` naming its type.
    """
    if _depth > MAX_DEPTH:
        raise WireError(f"value is nested more than {MAX_DEPTH} levels deep")
    depth = _depth + 1

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float_tag(float(value))
    if isinstance(value, Handle):
        return {"__handle__": value.id, "type": value.type_name}
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": bytes(value).hex()}
    if isinstance(value, list):
        return [encode_value(item, keep, depth) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(item, keep, depth) for item in value]}
    if isinstance(value, (set, frozenset)):
        # Sorted by their encoding so the same set always travels the same way.
        items = [encode_value(item, keep, depth) for item in value]
        return {"__set__": sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("__") for key in value):
            return {key: encode_value(item, keep, depth) for key, item in value.items()}
        return {"__dict__": [[encode_value(key, keep, depth), encode_value(item, keep, depth)]
                             for key, item in value.items()]}

    numpy_value = _from_numpy(value)
    if numpy_value is not None:
        return encode_value(numpy_value[0], keep, depth)

    if keep is None:
        raise WireError(f"a value of type {type(value).__name__} cannot be sent between processes")
    return encode_value(keep(value), None, depth)


def _from_numpy(value: Any) -> tuple[Any] | None:
    """Return ``(plain_value,)`` for a numpy array or scalar, else None, without importing numpy."""
    module = type(value).__module__
    if not module.startswith("numpy"):
        return None
    if hasattr(value, "tolist"):
        return (value.tolist(),)
    return None


def decode_value(data: Any, _depth: int = 0) -> Any:
    """Turn data made by :func:`encode_value` back into Python values (handles stay handles)."""
    if _depth > MAX_DEPTH:
        raise WireError(f"value is nested more than {MAX_DEPTH} levels deep")
    depth = _depth + 1

    if isinstance(data, list):
        return [decode_value(item, depth) for item in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        (tag, payload), = data.items()
        if tag == "__bytes__":
            return bytes.fromhex(payload)
        if tag == "__tuple__":
            return tuple(decode_value(item, depth) for item in payload)
        if tag == "__set__":
            return {_hashable(decode_value(item, depth)) for item in payload}
        if tag == "__dict__":
            return {_hashable(decode_value(key, depth)): decode_value(item, depth)
                    for key, item in payload}
        if tag == "__float__":
            return float(payload)
    if set(data) == {"__handle__", "type"}:
        return Handle(int(data["__handle__"]), str(data["type"]))
    return {key: decode_value(item, depth) for key, item in data.items()}


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, (dict, set)):
        raise WireError(f"a {type(value).__name__} cannot be a dictionary key or set member")
    return value


def dumps(message: dict) -> str:
    """Serialize one protocol message as a single JSON line (no NaN literals, which JSON lacks)."""
    return json.dumps(message, allow_nan=False, separators=(",", ":"))


def loads(line: str) -> dict:
    """Parse one protocol message line; anything but a JSON object raises :class:`WireError`."""
    try:
        message = json.loads(line)
    except ValueError as error:
        raise WireError(f"invalid message from the notebook process: {error}") from None
    if not isinstance(message, dict):
        raise WireError("invalid message from the notebook process: not a JSON object")
    return message
