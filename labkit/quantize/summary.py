"""Text summaries of a GGUF file: metadata, tensor table and bits per weight (``labkit inspect``).

>>> from labkit import assets
>>> from labkit.quantize.gguf_file import read_gguf
>>> print(summarize(read_gguf(assets.model_path("smollm2"))).splitlines()[1])   # doctest: +SKIP
GGUF version 3, 272 tensors, 33 metadata pairs, data aligned to 32 bytes
"""

from __future__ import annotations

from labkit.quantize.gguf_file import GGUFFile, TensorInfo


def _table(rows: list[tuple[str, ...]], right_aligned: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if i in right_aligned else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def metadata_lines(model: GGUFFile, max_chars: int = 70) -> list[str]:
    rows = [("KEY", "TYPE", "VALUE")]
    for key, field in model.fields.items():
        rows.append((key, field.type.name, field.describe(max_chars)))
    return _table(rows, right_aligned=set())


def tensor_lines(tensors: list[TensorInfo]) -> list[str]:
    rows = [("NAME", "TYPE", "SHAPE", "BYTES", "BITS/WEIGHT")]
    for info in tensors:
        shape = " x ".join(str(d) for d in info.shape)
        rows.append((info.name, info.type_name, shape, f"{info.n_bytes:,}", f"{info.bits_per_weight:.4g}"))
    return _table(rows, right_aligned={3, 4})


def type_lines(model: GGUFFile) -> list[str]:
    """Return one line per tensor type: its tensors, weights and bytes, with their shares."""
    per_type: dict[str, list[int]] = {}
    for info in model.tensors:
        counts = per_type.setdefault(info.type_name, [0, 0, 0])
        counts[0] += 1
        counts[1] += info.n_elements
        counts[2] += info.n_bytes
    total_weights = max(1, model.n_elements)
    total_bytes = max(1, model.tensor_data_bytes)
    rows = [("TYPE", "TENSORS", "WEIGHTS", "SHARE", "BYTES", "SHARE")]
    for name, (n_tensors, n_weights, n_bytes) in sorted(per_type.items(), key=lambda kv: -kv[1][2]):
        rows.append((name, str(n_tensors), f"{n_weights:,}", f"{100 * n_weights / total_weights:.1f}%",
                     f"{n_bytes:,}", f"{100 * n_bytes / total_bytes:.1f}%"))
    return _table(rows, right_aligned={1, 2, 3, 4, 5})


def summarize(model: GGUFFile, *, show_tensors: bool = True, max_chars: int = 70) -> str:
    """Return the report that ``labkit inspect`` prints for ``model``."""
    size = model.path.stat().st_size
    bits = 8 * model.tensor_data_bytes / model.n_elements if model.n_elements else 0.0
    lines = [
        f"{model.path} ({size / 1e6:.1f} MB)",
        f"GGUF version {model.version}, {len(model.tensors)} tensors, {len(model.fields)} metadata "
        f"pairs, data aligned to {model.alignment} bytes",
        "",
        *metadata_lines(model, max_chars),
        "",
    ]
    if show_tensors:
        lines += [*tensor_lines(model.tensors), ""]
    lines += [
        *type_lines(model),
        "",
        f"{model.n_elements:,} weights in {model.tensor_data_bytes:,} bytes of tensor data: "
        f"{bits:.2f} bits per weight ({8 * size / max(1, model.n_elements):.2f} counting the "
        "whole file)",
    ]
    return "\n".join(lines)
