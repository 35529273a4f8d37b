"""Quantize a whole GGUF model: read, choose each tensor's type, convert, write with gguf-py.

>>> from labkit.quantize.model import quantize_model
>>> result = quantize_model("model-f16.gguf", "model-q4_k_m.gguf", "Q4_K_M")   # doctest: +SKIP
>>> result.bits_per_weight                                                      # doctest: +SKIP
5.02

The output follows llama.cpp's quantizer (``llama_model_quantize``, no importance matrix) byte for
byte: the same metadata in the same order with ``general.quantization_version`` and
``general.file_type`` moved to the end, the tensors sorted by layer and name, the same types
(:mod:`labkit.quantize.recipes`) and the same bytes (:mod:`labkit.quantize.formats`). Tensors whose
type does not change are copied as they are.

Like ``llama-quantize``, converting a tensor that is already quantized needs
``allow_requantize=True``: its values are the dequantized ones, so errors compound.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGUFValueType, GGMLQuantizationType

from labkit.quantize.formats import NonFiniteValuesError, QuantizeError, get_format, quantize
from labkit.quantize.gguf_file import (NUMPY_VALUE_TYPES, GGUFFile, MetadataField, TensorInfo,
                                       read_gguf)
from labkit.quantize.recipes import FILE_TYPES, QUANTIZATION_VERSION, TensorPlan, plan_model

log = logging.getLogger(__name__)

# Values converted per task: 1 Mi float32 values (4 MiB) keep the K-quant temporaries in cache
# while giving two threads enough tasks to share.
CHUNK_VALUES = 1 << 20
DEFAULT_THREADS = min(2, os.cpu_count() or 1)
_UNQUANTIZED = (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16)
_SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


@dataclass
class QuantizeResult:
    """The outcome of :func:`quantize_model`: the plan per tensor, sizes and the time it took."""

    input_path: Path
    output_path: Path
    file_type: str
    plans: list[TensorPlan]
    seconds: float
    output_bytes: int
    tensor_bytes: int = 0
    n_elements: int = 0
    type_counts: dict[str, int] = field(default_factory=dict)

    @property
    def bits_per_weight(self) -> float:
        """Tensor data bits per weight, as llama.cpp reports it (file header excluded)."""
        return 8 * self.tensor_bytes / self.n_elements if self.n_elements else 0.0


def output_fields(model: GGUFFile, file_type_code: int) -> list[MetadataField]:
    """Return the input's metadata as llama.cpp writes it after quantization.

    llama.cpp copies every pair, drops split keys, and sets general.quantization_version and
    general.file_type by removing and appending them, so both always come last in that order.
    """
    moved = ("general.quantization_version", "general.file_type", *_SPLIT_KEYS)
    fields = [f for key, f in model.fields.items() if key not in moved]
    fields.append(MetadataField("general.quantization_version", GGUFValueType.UINT32,
                                QUANTIZATION_VERSION))
    fields.append(MetadataField("general.file_type", GGUFValueType.UINT32, file_type_code))
    return fields


class _ArrayPackingWriter(GGUFWriter):
    """gguf-py's writer, packing metadata arrays in one step instead of one call per item.

    ``GGUFWriter._pack_val`` (gguf 0.19) packs array items one by one, which takes seconds for a
    262,144-token vocabulary. The bytes are the same: element type, count, then the items.
    """

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype != GGUFValueType.ARRAY or sub_type is None or len(val) == 0:
            return super()._pack_val(val, vtype, add_vtype, sub_type)
        parts = [struct.pack("<I", vtype)] if add_vtype else []
        parts.append(struct.pack("<IQ", sub_type, len(val)))
        if sub_type in NUMPY_VALUE_TYPES:
            parts.append(np.asarray(val, dtype=NUMPY_VALUE_TYPES[sub_type]).tobytes())
        elif sub_type == GGUFValueType.STRING:
            for item in val:
                encoded = item.encode("utf-8") if isinstance(item, str) else item
                parts.append(struct.pack("<Q", len(encoded)))
                parts.append(encoded)
        else:
            return super()._pack_val(val, vtype, add_vtype, sub_type)
        return b"".join(parts)


def _ggml_shape(info: TensorInfo) -> tuple[int, ...]:
    """Shape as llama.cpp writes it: trailing size-1 dimensions (ggml order) dropped."""
    shape = list(info.shape)
    while len(shape) > 1 and shape[0] == 1:
        shape.pop(0)
    return tuple(shape)


def _open_writer(path: Path, model: GGUFFile, plans: list[TensorPlan], file_type_code: int) -> GGUFWriter:
    writer = _ArrayPackingWriter(path, arch=model.architecture or "unknown")
    writer.kv_data = [{}]       # drop the architecture key the writer adds, to keep the input order
    writer.data_alignment = model.alignment
    for item in output_fields(model, file_type_code):
        writer.add_key_value(item.key, item.value, item.type, item.element_type)
    for plan in plans:
        target = get_format(plan.target)
        n_bytes = plan.info.n_elements // target.block_size * target.type_size
        writer.add_tensor_info(plan.info.name, _ggml_shape(plan.info), np.dtype(np.float32), n_bytes,
                               raw_dtype=plan.target)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    return writer


def _check_convertible(model: GGUFFile, plans: list[TensorPlan], allow_requantize: bool) -> None:
    for plan in plans:
        if not plan.converts:
            continue
        get_format(plan.info.ggml_type)      # raises if labkit cannot read the source type
        if plan.info.ggml_type not in _UNQUANTIZED and not allow_requantize:
            raise QuantizeError(
                f"{model.path}: tensor {plan.info.name} is already {plan.info.type_name}; "
                "requantizing adds a second rounding error on top of the first. Start from an "
                "F32, F16 or BF16 model, or allow it with --allow-requantize"
            )


def _convert_rows(model: GGUFFile, plan: TensorPlan, rows: slice) -> np.ndarray:
    """Dequantize one slice of rows, quantize it to the target type and check the result."""
    values = model.tensor_values(plan.info, rows)
    try:
        packed = quantize(values, plan.target)
    except NonFiniteValuesError as error:
        raise QuantizeError(f"{model.path}: tensor {plan.info.name} (rows from {rows.start}): "
                            f"{error}") from None

    target = get_format(plan.target)
    invalid = target.invalid_blocks(packed.reshape(-1).view(target.layout))
    if invalid.any():
        peak = float(np.abs(values).max())
        raise QuantizeError(
            f"{model.path}: tensor {plan.info.name}: {int(invalid.sum())} blocks of "
            f"{plan.target.name} get a scale beyond float16's range (largest |value| {peak:.3g}); "
            "llama.cpp rejects such blocks too, so keep this tensor in F32 or BF16"
        )
    return packed


def _convert_tensor(model: GGUFFile, plan: TensorPlan, executor: ThreadPoolExecutor | None,
                    progress) -> np.ndarray:
    info = plan.info
    n_rows = info.n_elements // info.row_length
    rows_per_chunk = max(1, CHUNK_VALUES // info.row_length)
    chunks = [slice(start, min(start + rows_per_chunk, n_rows))
              for start in range(0, n_rows, rows_per_chunk)]
    target = get_format(plan.target)
    out = np.empty((n_rows, target.row_bytes(info.row_length)), dtype=np.uint8)

    results = executor.map(lambda rows: _convert_rows(model, plan, rows), chunks) if executor \
        else (_convert_rows(model, plan, rows) for rows in chunks)
    for rows, packed in zip(chunks, results):
        out[rows] = packed
        if progress is not None:
            progress.update((rows.stop - rows.start) * info.row_length)
    return out


def quantize_model(input_path: os.PathLike | str, output_path: os.PathLike | str,
                   file_type: str = "Q4_K_M", *, allow_requantize: bool = False,
                   progress: bool = True, threads: int = DEFAULT_THREADS) -> QuantizeResult:
    """Write ``output_path``: the model at ``input_path`` converted with recipe ``file_type``.

    ``file_type`` is one of :data:`labkit.quantize.recipes.FILE_TYPES` (F16, BF16, Q8_0, Q4_K_M).
    The file appears only when complete (it is written under a temporary name first). Raises
    :class:`labkit.quantize.gguf_file.GGUFError` for an unreadable input and
    :class:`QuantizeError` for weights that cannot be converted (NaN or infinity, overflow).
    """
    # Plain tqdm: text on stderr in terminals and notebooks alike (no ipywidgets needed).
    from tqdm import tqdm

    if file_type not in FILE_TYPES:
        raise QuantizeError(f"unknown file type {file_type!r}; choose one of {', '.join(FILE_TYPES)}")
    recipe = FILE_TYPES[file_type]
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.resolve() == input_path.resolve():
        raise QuantizeError(f"{output_path}: the output would overwrite the input; choose another path")

    started = time.perf_counter()
    model = read_gguf(input_path)
    plans = plan_model(model, recipe)
    _check_convertible(model, plans, allow_requantize)

    partial = output_path.with_name(output_path.name + ".partial")
    total = sum(p.info.n_elements for p in plans)
    bar = tqdm(total=total, unit="weights", unit_scale=True, desc=output_path.name,
               disable=not progress, leave=False)
    executor = ThreadPoolExecutor(threads) if threads > 1 else None
    writer = _open_writer(partial, model, plans, recipe.code)
    try:
        for plan in plans:
            bar.set_postfix_str(f"{plan.info.name} -> {plan.target.name}", refresh=False)
            if plan.converts:
                data = _convert_tensor(model, plan, executor, bar)
            else:
                data = model.tensor_bytes(plan.info)
                bar.update(plan.info.n_elements)
            writer.write_tensor_data(data)
        writer.close()
        os.replace(partial, output_path)
    finally:
        writer.close()
        bar.close()
        if executor is not None:
            executor.shutdown()
        partial.unlink(missing_ok=True)
        model.close()

    seconds = time.perf_counter() - started
    type_counts: dict[str, int] = {}
    tensor_bytes = 0
    for plan in plans:
        type_counts[plan.target.name] = type_counts.get(plan.target.name, 0) + 1
        tensor_bytes += get_format(plan.target).row_bytes(plan.info.row_length) * \
            (plan.info.n_elements // plan.info.row_length)
    result = QuantizeResult(input_path, output_path, file_type, plans, seconds,
                            output_path.stat().st_size, tensor_bytes, total, type_counts)
    log.info("quantized %s to %s (%s, %.2f bits per weight, %.0f MB) in %.1f s", input_path.name,
             output_path.name, file_type, result.bits_per_weight, result.output_bytes / 1e6, seconds)
    return result
