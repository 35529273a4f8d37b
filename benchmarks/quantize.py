"""Whole-model quantization: labkit against llama.cpp's quantizer, same input, same run.

    .venv/bin/python benchmarks/quantize.py                     # SmolLM2 and Gemma 3 270M
    .venv/bin/python benchmarks/quantize.py --models smollm2 --repeat 3 --json results.json

For each model the script first writes the F16 baseline with labkit by dequantizing the course's
quantized file, so the baseline is itself a dequantized model. It then quantizes that baseline to
Q8_0 and Q4_K_M with llama.cpp's ``llama_model_quantize`` (the anchor) and with labkit, in
alternating order. It prints the median times, their ratio (labkit / llama.cpp, target at most 3)
and the fraction of byte-identical blocks per tensor type (target 100%).

With ``--quality`` (on by default for SmolLM2) it also measures the table the book shows: size,
bits per weight, per-tensor error, perplexity on CPython documentation prose, decode speed and
greedy agreement with the baseline, all through llama.cpp on one thread.
"""

from __future__ import annotations

import os
import sys

# Python puts this script's folder first on sys.path. Other benchmark scripts named after stdlib
# modules (benchmarks/tokenize.py) would then shadow those modules, so the folder is removed.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from labkit import assets
from labkit.quantize.llama_cpp_quantizer import quantize_with_llama_cpp
from labkit.quantize.metrics import compare_blocks, measure_variants
from labkit.quantize.model import quantize_model

FILE_TYPES = ("Q8_0", "Q4_K_M")


def make_baseline(name: str, workdir: Path) -> tuple[Path, float, dict]:
    """Write the F16 baseline of a course model with labkit, and check it against llama.cpp's."""
    source = assets.model_path(name)
    baseline = workdir / f"{name}-f16.gguf"
    reference = workdir / f"{name}-f16-llama-cpp.gguf"
    result = quantize_model(source, baseline, "F16", allow_requantize=True, progress=False)
    quantize_with_llama_cpp(source, reference, "F16", allow_requantize=True)
    comparison = compare_blocks(baseline, reference)
    reference.unlink()
    return baseline, result.seconds, {"files_identical": comparison.files_identical,
                                      "identical_blocks": comparison.fraction}


def time_both(baseline: Path, file_type: str, workdir: Path, repeat: int) -> dict:
    """Quantize with both tools ``repeat`` times, alternating which goes first."""
    stem = baseline.stem.removesuffix("-f16")
    ours = workdir / f"{stem}-{file_type}-labkit.gguf"
    theirs = workdir / f"{stem}-{file_type}-llama-cpp.gguf"
    labkit_seconds, llama_seconds = [], []
    for attempt in range(repeat):
        runs = [("labkit", ours), ("llama.cpp", theirs)]
        for tool, path in runs if attempt % 2 == 0 else reversed(runs):
            if tool == "labkit":
                started = time.perf_counter()
                quantize_model(baseline, path, file_type, progress=False)
                labkit_seconds.append(time.perf_counter() - started)
            else:
                llama_seconds.append(quantize_with_llama_cpp(baseline, path, file_type))
    comparison = compare_blocks(ours, theirs)
    return {
        "file_type": file_type,
        "labkit_seconds": statistics.median(labkit_seconds),
        "llama_cpp_seconds": statistics.median(llama_seconds),
        "ratio": statistics.median(labkit_seconds) / statistics.median(llama_seconds),
        "files_identical": comparison.files_identical,
        "identical_blocks": comparison.fraction,
        "blocks": comparison.total,
        "labkit_path": str(ours),
    }


def print_speed_table(model: str, rows: list[dict]) -> None:
    print(f"\n{model}: labkit vs llama.cpp quantizer (median of runs; ratio = labkit / llama.cpp)")
    print(f"{'type':<8} {'labkit s':>9} {'llama.cpp s':>12} {'ratio':>6}  {'same file':<9}  identical blocks")
    for row in rows:
        blocks = ", ".join(f"{name} {fraction:.4%}" for name, fraction in row["identical_blocks"].items())
        print(f"{row['file_type']:<8} {row['labkit_seconds']:>9.2f} {row['llama_cpp_seconds']:>12.2f} "
              f"{row['ratio']:>6.2f}  {str(row['files_identical']):<9}  {blocks}")


def print_quality_table(rows: list[dict]) -> None:
    columns = list(rows[-1])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["smollm2", "gemma3-270m"],
                        choices=sorted(assets.MODELS), help="course models to quantize")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per tool and type")
    parser.add_argument("--quality", nargs="*", default=None, metavar="MODEL",
                        help="models to measure the quality table for (default: smollm2)")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens of text for perplexity")
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    args = parser.parse_args(argv)
    quality_models = ["smollm2"] if args.quality is None else args.quality

    results = {}
    with tempfile.TemporaryDirectory(prefix="labkit-quantize-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        for model in args.models:
            baseline, seconds, f16_check = make_baseline(model, workdir)
            print(f"\n{model}: F16 baseline {baseline.name} written by labkit in {seconds:.1f} s "
                  f"(same bytes as llama.cpp's F16 conversion: {f16_check['files_identical']})")
            speed = [time_both(baseline, file_type, workdir, args.repeat) for file_type in FILE_TYPES]
            print_speed_table(model, speed)
            results[model] = {"f16_baseline": f16_check, "speed": speed}

            if model in quality_models:
                variants = {row["file_type"]: row["labkit_path"] for row in speed}
                measured = measure_variants(baseline, variants, baseline_name="F16 (baseline)",
                                            n_tokens=args.tokens)
                rows = [m.as_row(measured[0]) for m in measured]
                print(f"\n{model}: quality against the F16 baseline (llama.cpp, 1 thread)")
                print_quality_table(rows)
                results[model]["quality"] = rows

    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
