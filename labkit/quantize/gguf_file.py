"""Read a GGUF file's header, metadata and tensor table, checking every count against the file.

A GGUF file is a header (magic ``GGUF``, version, tensor count, metadata count), metadata
key-value pairs, one info record per tensor (name, dimensions, type, offset) and the aligned
tensor data. :func:`read_gguf` parses that with the constants of gguf-py (the ``gguf`` package)
and memory-maps the data, so tensors are read only when asked for:

>>> from labkit import assets
>>> from labkit.quantize.gguf_file import read_gguf
>>> model = read_gguf(assets.model_path("smollm2"))                 # doctest: +SKIP
>>> model.fields["general.architecture"].value, len(model.tensors)  # doctest: +SKIP
('llama', 272)
>>> model.tensor("output_norm.weight").type_name                    # doctest: +SKIP
'F32'

Why not gguf-py's ``GGUFReader``: it trusts the header's counts and lengths and creates one
numpy view per array element, which took 20 s for Gemma 3's 262,144-token vocabulary on the
course machine (2 shared cores). Here every length is checked against the bytes left before
anything is allocated, so a truncated or lying file fails fast with :class:`GGUFError` naming
the file, the offset and the problem. ``GGUFReader`` serves as the independent check in the
tests, and :mod:`labkit.quantize.model` writes files with gguf-py's ``GGUFWriter``.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from labkit.quantize.formats import dequantize

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4            # GGML_MAX_DIMS
MAX_NAME_BYTES = 63     # GGML_MAX_NAME is 64 including the terminating NUL
MAX_ARRAY_NESTING = 4   # arrays of arrays are legal; deeper nesting is treated as corruption

# Bytes of each scalar value type, and the smallest possible size of one metadata pair and one
# tensor info record: these bound the counts a header may claim.
_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
NUMPY_VALUE_TYPES = {
    GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2", GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8",
}
_UINT64 = struct.Struct("<Q")
_MIN_FIELD_BYTES = 8 + 1 + 4 + 1           # key length, 1-byte key, value type, 1-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 4 + 8  # name length, 1-byte name, n_dims, type, offset


class GGUFError(ValueError):
    """A GGUF file is missing, truncated or inconsistent; the message names the file and problem."""

    def __init__(self, path: os.PathLike | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class MetadataField:
    """One metadata pair: key, GGUF value type, value and, for arrays, the element type.

    Numeric arrays are numpy arrays; strings are ``str``, or ``bytes`` when not valid UTF-8.
    """

    key: str
    type: GGUFValueType
    value: Any
    element_type: GGUFValueType | None = None

    def describe(self, max_chars: int = 60) -> str:
        """Return the value as a short string: arrays as ``[N x TYPE]`` plus their first items."""
        if self.type != GGUFValueType.ARRAY:
            text = repr(self.value) if isinstance(self.value, (str, bytes)) else str(self.value)
        else:
            head = ", ".join(repr(v) if isinstance(v, (str, bytes)) else str(v)
                             for v in list(self.value[:3]))
            more = ", ..." if len(self.value) > 3 else ""
            text = f"[{len(self.value)} x {self.element_type.name}] {head}{more}"
        text = text.replace("\n", "\\n")
        return text if len(text) <= max_chars else text[:max_chars - 3] + "..."


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the table. ``shape`` is numpy order: the row length comes last."""

    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType
    offset: int            # from the start of the data section
    n_bytes: int

    @property
    def type_name(self) -> str:
        return self.ggml_type.name

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def row_length(self) -> int:
        return self.shape[-1]

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.n_bytes / self.n_elements if self.n_elements else 0.0


class GGUFFile:
    """An open GGUF file: ``fields`` (in file order), ``tensors`` (in file order) and their data."""

    def __init__(self, path: Path, version: int, fields: dict[str, MetadataField],
                 tensors: list[TensorInfo], alignment: int, data_offset: int, buffer: mmap.mmap):
        self.path = path
        self.version = version
        self.fields = fields
        self.tensors = tensors
        self.alignment = alignment
        self.data_offset = data_offset
        self._buffer = buffer
        self._by_name = {t.name: t for t in tensors}

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        # Arrays returned by tensor_bytes() may still point into the map; they keep it alive.
        self._buffer = None

    @property
    def architecture(self) -> str | None:
        field = self.fields.get("general.architecture")
        return field.value if field else None

    @property
    def n_elements(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_data_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    def tensor(self, name: str) -> TensorInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None

    def tensor_bytes(self, info: TensorInfo | str) -> np.ndarray:
        """Return a tensor's raw bytes as a read-only uint8 array of shape (rows, row bytes)."""
        info = self.tensor(info) if isinstance(info, str) else info
        if self._buffer is None:
            raise ValueError(f"{self.path} is closed")
        flat = np.frombuffer(self._buffer, dtype=np.uint8, count=info.n_bytes,
                             offset=self.data_offset + info.offset)
        n_rows = math.prod(info.shape[:-1])
        return flat.reshape(n_rows, info.n_bytes // n_rows if n_rows else 0)

    def tensor_values(self, info: TensorInfo | str, rows: slice = slice(None)) -> np.ndarray:
        """Return a tensor's rows (all, or the ``rows`` slice) dequantized to float32, 2-D."""
        info = self.tensor(info) if isinstance(info, str) else info
        return dequantize(self.tensor_bytes(info)[rows], info.ggml_type)


class _Cursor:
    """Reads little-endian values from a buffer, refusing any read past its end."""

    def __init__(self, buffer, path: Path):
        self.buffer = buffer
        self.size = len(buffer)
        self.offset = 0
        self.path = path

    def fail(self, problem: str) -> GGUFError:
        return GGUFError(self.path, problem)

    def take(self, n_bytes: int, what: str) -> memoryview:
        if n_bytes > self.size - self.offset:
            raise self.fail(f"truncated: {what} needs {n_bytes} bytes at offset {self.offset}, "
                            f"but the file ends at {self.size}; the file is incomplete or corrupt, "
                            "so download or convert it again")
        start = self.offset
        self.offset += n_bytes
        return memoryview(self.buffer)[start:self.offset]

    def scalar(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str | bytes:
        length = self.scalar("<Q", f"the length of {what}")
        raw = bytes(self.take(length, f"{what} ({length} bytes)"))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw

    def string_array(self, count: int, key: str) -> list[str | bytes]:
        """Read ``count`` strings; the same checks as :meth:`string`, in a tighter loop because
        vocabularies hold hundreds of thousands of them."""
        buffer, size, offset = self.buffer, self.size, self.offset
        read_length = _UINT64.unpack_from
        items: list[str | bytes] = []
        for index in range(count):
            if offset + 8 > size:
                self.offset = offset
                self.take(8, f"the length of item {index} of {key!r}")
            (length,) = read_length(buffer, offset)
            offset += 8
            if length > size - offset:
                self.offset = offset
                self.take(length, f"item {index} of {key!r} ({length} bytes)")
            raw = buffer[offset:offset + length]
            offset += length
            try:
                items.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                items.append(bytes(raw))
        self.offset = offset
        return items

    def check_count(self, count: int, min_bytes_each: int, what: str) -> None:
        """Reject a count that cannot fit in the rest of the file, before allocating anything."""
        remaining = self.size - self.offset
        if count * min_bytes_each > remaining:
            raise self.fail(f"the header claims {count} {what}, which cannot fit in the "
                            f"{remaining} bytes left at offset {self.offset}; the file is "
                            "truncated or corrupt")


def _value_type(cursor: _Cursor, code: int, where: str) -> GGUFValueType:
    try:
        return GGUFValueType(code)
    except ValueError:
        raise cursor.fail(f"{where} has unknown value type {code}; the file is corrupt or from "
                          "a newer GGUF version") from None


def _read_value(cursor: _Cursor, value_type: GGUFValueType, key: str, depth: int = 0):
    """Read one metadata value; returns (value, element type or None)."""
    if value_type == GGUFValueType.STRING:
        return cursor.string(f"the string value of {key!r}"), None
    if value_type in _SCALAR_FORMATS:
        return cursor.scalar(_SCALAR_FORMATS[value_type], f"the value of {key!r}"), None

    # An array: element type, count, then the elements.
    element_type = _value_type(cursor, cursor.scalar("<I", f"the array type of {key!r}"),
                               f"array {key!r}")
    count = cursor.scalar("<Q", f"the array length of {key!r}")
    if element_type in NUMPY_VALUE_TYPES:
        dtype = np.dtype(NUMPY_VALUE_TYPES[element_type])
        cursor.check_count(count, dtype.itemsize, f"elements in array {key!r}")
        raw = cursor.take(count * dtype.itemsize, f"array {key!r}")
        return np.frombuffer(raw, dtype=dtype).copy(), element_type
    if element_type == GGUFValueType.STRING:
        cursor.check_count(count, 8, f"strings in array {key!r}")
        return cursor.string_array(count, key), element_type
    if depth >= MAX_ARRAY_NESTING:
        raise cursor.fail(f"array {key!r} nests arrays more than {MAX_ARRAY_NESTING} deep; "
                          "the file is corrupt")
    cursor.check_count(count, 12, f"arrays in array {key!r}")
    return [_read_value(cursor, GGUFValueType.ARRAY, key, depth + 1)[0] for _ in range(count)], \
        element_type


def _read_fields(cursor: _Cursor, count: int) -> dict[str, MetadataField]:
    cursor.check_count(count, _MIN_FIELD_BYTES, "metadata pairs")
    fields: dict[str, MetadataField] = {}
    for index in range(count):
        key = cursor.string(f"the key of metadata pair {index}")
        if not key:
            raise cursor.fail(f"metadata pair {index} has an empty key; the file is corrupt")
        if key in fields:
            raise cursor.fail(f"metadata key {key!r} appears twice; the file is corrupt")
        value_type = _value_type(cursor, cursor.scalar("<I", f"the type of {key!r}"), repr(key))
        value, element_type = _read_value(cursor, value_type, str(key))
        fields[str(key)] = MetadataField(str(key), value_type, value, element_type)
    return fields


def _alignment(cursor: _Cursor, fields: dict[str, MetadataField]) -> int:
    field = fields.get("general.alignment")
    if field is None:
        return DEFAULT_ALIGNMENT
    if field.type != GGUFValueType.UINT32:
        raise cursor.fail(f"general.alignment must be a UINT32, not {field.type.name}")
    if field.value == 0 or field.value & (field.value - 1):
        raise cursor.fail(f"general.alignment {field.value} is not a power of 2")
    return field.value


def _read_tensor_info(cursor: _Cursor, index: int) -> tuple[TensorInfo, int]:
    """Read one tensor info record; returns the record (offset not yet checked) and the offset."""
    name = cursor.string(f"the name of tensor {index}")
    if isinstance(name, bytes) or not name or len(name.encode()) > MAX_NAME_BYTES:
        raise cursor.fail(f"tensor {index} has an invalid name {name!r} (expected 1 to "
                          f"{MAX_NAME_BYTES} bytes of UTF-8)")
    n_dims = cursor.scalar("<I", f"the dimension count of {name!r}")
    if n_dims > MAX_DIMS:
        raise cursor.fail(f"tensor {name!r} has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}")
    dims = [cursor.scalar("<q", f"dimension {j} of {name!r}") for j in range(n_dims)]
    if any(d < 0 for d in dims):
        raise cursor.fail(f"tensor {name!r} has a negative dimension {dims}")
    if math.prod(dims) >= 2**63:
        raise cursor.fail(f"tensor {name!r} has dimensions {dims}, whose product overflows int64")

    code = cursor.scalar("<I", f"the type of {name!r}")
    try:
        ggml_type = GGMLQuantizationType(code)
        block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    except (ValueError, KeyError):
        raise cursor.fail(f"tensor {name!r} has unknown ggml type {code}") from None
    row_length = dims[0] if dims else 1
    if row_length % block_size:
        raise cursor.fail(f"tensor {name!r} has rows of {row_length} values, which is not a "
                          f"multiple of the {ggml_type.name} block size {block_size}")
    offset = cursor.scalar("<Q", f"the data offset of {name!r}")

    shape = tuple(reversed(dims)) if dims else (1,)
    n_bytes = math.prod(dims) // block_size * type_size
    return TensorInfo(name, shape, ggml_type, offset, n_bytes), offset


def _read_tensor_infos(cursor: _Cursor, count: int) -> list[TensorInfo]:
    cursor.check_count(count, _MIN_TENSOR_INFO_BYTES, "tensors")
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for index in range(count):
        info, _ = _read_tensor_info(cursor, index)
        if info.name in seen:
            raise cursor.fail(f"tensor name {info.name!r} appears twice; the file is corrupt")
        seen.add(info.name)
        tensors.append(info)
    return tensors


def _check_data_layout(cursor: _Cursor, tensors: list[TensorInfo], alignment: int,
                       data_offset: int) -> None:
    """Each tensor must start where the previous one ends, padded to the alignment (as llama.cpp
    requires), and the last one must end inside the file."""
    expected = 0
    for info in tensors:
        if info.offset != expected:
            raise cursor.fail(f"tensor {info.name!r} has data offset {info.offset}, expected "
                              f"{expected} (tensors are stored back to back, aligned to "
                              f"{alignment} bytes); the tensor table is corrupt")
        expected += -(-info.n_bytes // alignment) * alignment
    end = data_offset + (tensors[-1].offset + tensors[-1].n_bytes if tensors else 0)
    if end > cursor.size:
        raise cursor.fail(f"truncated: the tensor data ends at byte {end}, but the file has only "
                          f"{cursor.size} bytes; the file is incomplete, so download or convert "
                          "it again")


def read_gguf(path: os.PathLike | str) -> GGUFFile:
    """Open and check a GGUF file; raises :class:`GGUFError` naming the file and the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise GGUFError(path, "the file is empty, not a GGUF model")
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as error:
        raise GGUFError(path, f"cannot be opened: {error.strerror or error}") from None

    cursor = _Cursor(buffer, path)
    magic = bytes(cursor.take(4, "the magic number"))
    if magic != GGUF_MAGIC:
        raise cursor.fail(f"not a GGUF file: it starts with {magic!r} instead of {GGUF_MAGIC!r}")
    version = cursor.scalar("<I", "the version")
    if version not in SUPPORTED_VERSIONS:
        hint = (" (this looks like a big-endian GGUF, which labkit does not read)"
                if int.from_bytes(version.to_bytes(4, "little"), "big") in SUPPORTED_VERSIONS else "")
        raise cursor.fail(f"unsupported GGUF version {version}{hint}; labkit reads versions "
                          f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    n_tensors = cursor.scalar("<Q", "the tensor count")
    n_fields = cursor.scalar("<Q", "the metadata count")

    fields = _read_fields(cursor, n_fields)
    alignment = _alignment(cursor, fields)
    tensors = _read_tensor_infos(cursor, n_tensors)
    data_offset = -(-cursor.offset // alignment) * alignment
    _check_data_layout(cursor, tensors, alignment, data_offset)
    return GGUFFile(path, version, fields, tensors, alignment, data_offset, buffer)
