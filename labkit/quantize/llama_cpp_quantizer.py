"""llama.cpp's own whole-file quantizer, the reference that labkit's output is compared with.

>>> from labkit.quantize.llama_cpp_quantizer import quantize_with_llama_cpp
>>> seconds = quantize_with_llama_cpp("model-f16.gguf", "model-q8_0.gguf", "Q8_0")  # doctest: +SKIP

This calls ``llama_model_quantize`` from llama-cpp-python with
``llama_model_quantize_default_params()``: no importance matrix, all cores, so llama.cpp runs its
reference quantizers (``quantize_row_*_ref``). llama.cpp prints one line per tensor on stderr; the
lines are captured and only shown when quantization fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from labkit.quantize.formats import QuantizeError
from labkit.quantize.recipes import FILE_TYPES


@contextlib.contextmanager
def _captured_stderr():
    """Redirect file descriptor 2 (where C code writes) to a temporary file; yields the file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quantize_with_llama_cpp(input_path: os.PathLike | str, output_path: os.PathLike | str,
                            file_type: str, *, allow_requantize: bool = False,
                            threads: int = 0) -> float:
    """Quantize with llama.cpp's ``llama_model_quantize``; returns the seconds it took.

    ``threads=0`` lets llama.cpp use every core (its default). Raises :class:`QuantizeError`
    with llama.cpp's last log lines when it fails.
    """
    import llama_cpp

    if file_type not in FILE_TYPES:
        raise QuantizeError(f"unknown file type {file_type!r}; choose one of {', '.join(FILE_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[file_type].code
    params.allow_requantize = allow_requantize
    params.nthread = threads

    with _captured_stderr() as log:
        started = time.perf_counter()
        status = llama_cpp.llama_model_quantize(str(input_path).encode(), str(output_path).encode(),
                                                params)
        seconds = time.perf_counter() - started
        log.seek(0)
        lines = log.read().decode("utf-8", "replace").splitlines()
    if status != 0:
        Path(output_path).unlink(missing_ok=True)
        tail = "\n".join(lines[-5:])
        raise QuantizeError(f"llama.cpp could not quantize {input_path} to {file_type} "
                            f"(status {status}):\n{tail}")
    return seconds
