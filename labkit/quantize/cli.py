"""``labkit inspect FILE.gguf`` and ``labkit quantize IN.gguf OUT.gguf --type TYPE``."""

from __future__ import annotations

import argparse
import os
import sys

from labkit.quantize.formats import QuantizeError
from labkit.quantize.gguf_file import GGUFError, read_gguf
from labkit.quantize.recipes import FILE_TYPES


def register(subparsers: argparse._SubParsersAction) -> None:
    inspect = subparsers.add_parser(
        "inspect", help="show a GGUF file's metadata, tensor table and bits per weight",
        description="Print a GGUF file's metadata, one line per tensor (name, type, shape, "
                    "bytes, bits per weight), a summary per tensor type and the overall bits "
                    "per weight.",
    )
    inspect.add_argument("file", metavar="FILE.gguf", help="the GGUF file to read")
    inspect.add_argument("--no-tensors", action="store_true",
                         help="leave out the per-tensor table (keep the per-type summary)")
    inspect.add_argument("--width", type=int, default=70, metavar="CHARS",
                         help="cut metadata values after this many characters (default 70)")
    inspect.set_defaults(handler=run_inspect)

    quantize = subparsers.add_parser(
        "quantize", help="convert a GGUF model to F16, BF16, Q8_0 or Q4_K_M",
        description="Convert a GGUF model with llama.cpp's recipe for the chosen file type "
                    "(no importance matrix). The output matches llama.cpp's quantizer byte "
                    "for byte.",
    )
    quantize.add_argument("input", metavar="IN.gguf", help="the model to convert")
    quantize.add_argument("output", metavar="OUT.gguf", help="where to write the result")
    quantize.add_argument("--type", required=True, choices=list(FILE_TYPES), dest="file_type",
                          help="the recipe: F16, BF16 (16 bits), Q8_0 (8.5 bits) or Q4_K_M "
                               "(about 4.9 bits per weight on large models)")
    quantize.add_argument("--allow-requantize", action="store_true",
                          help="also convert tensors that are already quantized (their rounding "
                               "errors add up)")
    quantize.add_argument("--threads", type=int, default=2, metavar="N",
                          help="worker threads (default 2)")
    quantize.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    quantize.set_defaults(handler=run_quantize)


def run_inspect(args: argparse.Namespace) -> int:
    from labkit.quantize.summary import summarize

    try:
        with read_gguf(args.file) as model:
            print(summarize(model, show_tensors=not args.no_tensors, max_chars=args.width))
    except GGUFError as error:
        print(f"labkit inspect: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader (e.g. `| head`) stopped early; silence Python's flush error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    from labkit.quantize.model import quantize_model

    try:
        result = quantize_model(args.input, args.output, args.file_type,
                                allow_requantize=args.allow_requantize,
                                progress=not args.no_progress, threads=max(1, args.threads))
    except (GGUFError, QuantizeError) as error:
        print(f"labkit quantize: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"labkit quantize: cannot write {args.output}: {error.strerror or error}",
              file=sys.stderr)
        return 2

    counts = ", ".join(f"{n} {name}" for name, n in sorted(result.type_counts.items()))
    fallbacks = sum(1 for plan in result.plans if plan.reason.startswith("fallback"))
    print(f"wrote {result.output_path} ({result.output_bytes / 1e6:.1f} MB, "
          f"{result.bits_per_weight:.2f} bits per weight) in {result.seconds:.1f} s")
    print(f"tensors: {counts}" + (f"; {fallbacks} fell back to a 32-value block format because "
                                   "their rows are not a multiple of 256" if fallbacks else ""))
    return 0
