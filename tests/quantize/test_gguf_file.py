"""Reading GGUF files: agreement with gguf-py's reader, and clear errors for broken files."""

from __future__ import annotations

import struct
import time
import tracemalloc

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.constants import GGMLQuantizationType, GGUFValueType

from labkit import assets
from labkit.quantize.gguf_file import GGUFError, read_gguf

U32, U64, STR, ARR, F32 = (GGUFValueType.UINT32, GGUFValueType.UINT64, GGUFValueType.STRING,
                           GGUFValueType.ARRAY, GGUFValueType.FLOAT32)


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def field(key: str, value_type: int, payload: bytes) -> bytes:
    return gguf_string(key) + struct.pack("<I", value_type) + payload


def tensor_info(name: str, dims: list[int], type_id: int, offset: int) -> bytes:
    return (gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<q", d) for d in dims)
            + struct.pack("<I", type_id) + struct.pack("<Q", offset))


def build_gguf(fields: list[bytes], infos: list[bytes], data: bytes, *, version: int = 3,
               n_tensors: int | None = None, n_fields: int | None = None, magic: bytes = b"GGUF",
               alignment: int = 32) -> bytes:
    """Assemble a GGUF file byte by byte (no labkit code), so tests can break any part of it."""
    header = magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                                 len(fields) if n_fields is None else n_fields)
    body = header + b"".join(fields) + b"".join(infos)
    padding = b"\0" * (-len(body) % alignment)
    return body + padding + data


def valid_parts():
    tokens = [b"<s>", "h\u00e9llo".encode(), b"\xff\xfe"]           # one token is not UTF-8
    fields = [
        field("general.architecture", STR, gguf_string("llama")),
        field("llama.block_count", U32, struct.pack("<I", 1)),
        field("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, len(tokens))
              + b"".join(gguf_string(t) for t in tokens)),
        field("tokenizer.ggml.scores", ARR, struct.pack("<IQ", F32, 3) + np.float32([0, -1, -2]).tobytes()),
    ]
    norm = np.arange(4, dtype=np.float32).tobytes()
    weight = bytes(range(68))                       # two Q8_0 blocks = one row of 64 values
    infos = [tensor_info("output_norm.weight", [4], 0, 0),
             tensor_info("blk.0.ffn_down.weight", [64, 1], 8, 32)]
    data = norm + b"\0" * 16 + weight + b"\0" * 28
    return fields, infos, data


@pytest.fixture
def write(tmp_path):
    def write_bytes(content: bytes, name: str = "model.gguf"):
        path = tmp_path / name
        path.write_bytes(content)
        return path
    return write_bytes


def expect_error(path, *fragments: str) -> str:
    """Read ``path``, expecting a GGUFError naming the file, quickly and in little memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(GGUFError) as raised:
            read_gguf(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert time.perf_counter() - started < 2.0
    assert peak < 8 * 2**20, f"reading a broken file allocated {peak / 2**20:.1f} MiB"
    return message


def test_valid_file_is_read(write):
    model = read_gguf(write(build_gguf(*valid_parts())))
    assert model.version == 3
    assert model.architecture == "llama"
    assert model.fields["tokenizer.ggml.tokens"].value == ["<s>", "h\u00e9llo", b"\xff\xfe"]
    assert model.fields["tokenizer.ggml.scores"].value.tolist() == [0.0, -1.0, -2.0]
    assert [t.name for t in model.tensors] == ["output_norm.weight", "blk.0.ffn_down.weight"]
    assert model.tensor("blk.0.ffn_down.weight").shape == (1, 64)
    assert model.tensor_values("output_norm.weight").tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert model.tensor_bytes("blk.0.ffn_down.weight").tobytes() == bytes(range(68))


def test_valid_file_agrees_with_gguf_py(write):
    path = write(build_gguf(*valid_parts()))
    model = read_gguf(path)
    reader = GGUFReader(path)
    assert model.data_offset == reader.data_offset
    assert [t.name for t in reader.tensors] == [t.name for t in model.tensors]
    assert [t.data_offset for t in reader.tensors] == [model.data_offset + t.offset for t in model.tensors]


@pytest.mark.slow
def test_real_model_agrees_with_gguf_py():
    path = assets.model_path("smollm2")
    model = read_gguf(path)
    reader = GGUFReader(path)
    assert model.data_offset == reader.data_offset
    keys = [key for key in reader.fields if not key.startswith("GGUF.")]
    assert keys == list(model.fields)
    for key in keys:
        expected = reader.fields[key].contents()
        value = model.fields[key].value
        value = value.tolist() if isinstance(value, np.ndarray) else value
        assert value == expected, key
    for ours, theirs in zip(model.tensors, reader.tensors, strict=True):
        assert ours.name == theirs.name
        assert ours.ggml_type == theirs.tensor_type
        assert ours.n_bytes == theirs.n_bytes
        assert list(ours.shape) == [int(d) for d in reversed(theirs.shape)]
        assert model.data_offset + ours.offset == theirs.data_offset


def test_every_truncation_is_reported(write):
    content = build_gguf(*valid_parts())
    end_of_last_tensor = len(content) - 28        # the trailing alignment padding is optional
    for cut in [*range(0, end_of_last_tensor, 5), end_of_last_tensor - 1]:
        path = write(content[:cut], f"cut{cut}.gguf")
        message = expect_error(path)
        assert any(word in message for word in ("truncated", "empty", "cannot fit")), message


def test_wrong_magic(write):
    fields, infos, data = valid_parts()
    expect_error(write(build_gguf(fields, infos, data, magic=b"GGML")), "not a GGUF file", "b'GGML'")


@pytest.mark.parametrize("version", [1, 4, 99])
def test_unsupported_version(write, version):
    fields, infos, data = valid_parts()
    expect_error(write(build_gguf(fields, infos, data, version=version)),
                 f"unsupported GGUF version {version}")


def test_big_endian_version_named(write):
    fields, infos, data = valid_parts()
    expect_error(write(build_gguf(fields, infos, data, version=0x03000000)), "big-endian")


@pytest.mark.parametrize("count", [2**63, 10**9, 3])
def test_absurd_tensor_count(write, count):
    fields, infos, data = valid_parts()
    message = expect_error(write(build_gguf(fields, infos, data, n_tensors=count)))
    # A small lie makes the reader take data bytes for a third tensor record.
    expected = (f"claims {count} tensors", "truncated", "invalid name", "unknown ggml type")
    assert any(fragment in message for fragment in expected), message


def test_absurd_metadata_count(write):
    fields, infos, data = valid_parts()
    expect_error(write(build_gguf(fields, infos, data, n_fields=2**40)), f"claims {2**40} metadata pairs")


def test_absurd_string_length(write):
    fields, infos, data = valid_parts()
    fields[0] = struct.pack("<Q", 2**62) + b"general.architecture"
    expect_error(write(build_gguf(fields, infos, data)), "truncated", str(2**62))


def test_absurd_array_length(write):
    fields, infos, data = valid_parts()
    fields[3] = field("tokenizer.ggml.scores", ARR, struct.pack("<IQ", F32, 2**60))
    expect_error(write(build_gguf(fields, infos, data)), f"claims {2**60} elements")


def test_absurd_string_array_length(write):
    fields, infos, data = valid_parts()
    fields[2] = field("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, 2**50))
    expect_error(write(build_gguf(fields, infos, data)), f"claims {2**50} strings")


def test_unknown_value_type(write):
    fields, infos, data = valid_parts()
    fields[1] = field("llama.block_count", 77, struct.pack("<I", 1))
    expect_error(write(build_gguf(fields, infos, data)), "unknown value type 77", "llama.block_count")


def test_duplicate_key(write):
    fields, infos, data = valid_parts()
    expect_error(write(build_gguf(fields + [fields[1]], infos, data)), "appears twice")


def test_too_many_dimensions(write):
    fields, infos, data = valid_parts()
    infos[0] = tensor_info("output_norm.weight", [4, 1, 1, 1, 1], 0, 0)
    expect_error(write(build_gguf(fields, infos, data)), "5 dimensions")


def test_dimension_product_overflow(write):
    fields, infos, data = valid_parts()
    infos[0] = tensor_info("output_norm.weight", [2**40, 2**40], 0, 0)
    expect_error(write(build_gguf(fields, infos, data)), "overflows int64")


def test_negative_dimension(write):
    fields, infos, data = valid_parts()
    infos[0] = tensor_info("output_norm.weight", [-4], 0, 0)
    expect_error(write(build_gguf(fields, infos, data)), "negative dimension")


def test_huge_tensor_beyond_file(write):
    fields, infos, data = valid_parts()
    infos[1] = tensor_info("blk.0.ffn_down.weight", [2**30, 2**20], 0, 32)
    expect_error(write(build_gguf(fields, infos, data)), "truncated", "tensor data ends")


def test_unknown_tensor_type(write):
    fields, infos, data = valid_parts()
    infos[0] = tensor_info("output_norm.weight", [4], 99, 0)
    expect_error(write(build_gguf(fields, infos, data)), "unknown ggml type 99")


def test_row_not_multiple_of_block(write):
    fields, infos, data = valid_parts()
    infos[1] = tensor_info("blk.0.ffn_down.weight", [100, 1], int(GGMLQuantizationType.Q8_0), 32)
    expect_error(write(build_gguf(fields, infos, data)), "rows of 100 values",
                 "Q8_0 block size 32")


def test_wrong_offset(write):
    fields, infos, data = valid_parts()
    infos[1] = tensor_info("blk.0.ffn_down.weight", [64, 1], 8, 7)
    expect_error(write(build_gguf(fields, infos, data)), "data offset 7, expected 32")


def test_duplicate_tensor_name(write):
    fields, infos, data = valid_parts()
    infos[1] = tensor_info("output_norm.weight", [64, 1], 8, 32)
    expect_error(write(build_gguf(fields, infos, data)), "appears twice")


def test_truncated_data(write):
    content = build_gguf(*valid_parts())
    expect_error(write(content[:-40]), "tensor data ends")


@pytest.mark.parametrize("value, fragment", [(3, "not a power of 2"), (0, "not a power of 2")])
def test_bad_alignment(write, value, fragment):
    fields, infos, data = valid_parts()
    fields.append(field("general.alignment", U32, struct.pack("<I", value)))
    expect_error(write(build_gguf(fields, infos, data)), fragment)


def test_alignment_of_wrong_type(write):
    fields, infos, data = valid_parts()
    fields.append(field("general.alignment", U64, struct.pack("<Q", 32)))
    expect_error(write(build_gguf(fields, infos, data)), "must be a UINT32")


def test_empty_file(write):
    expect_error(write(b""), "empty")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "absent.gguf", "cannot be opened")


def test_directory(tmp_path):
    expect_error(tmp_path, "cannot be opened")
