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
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from labkit.quantize.formats import QuantizeError
from labkit.quantize.recipes import FILE_TYPES


@contextlib.contextmanager
def _captured_stderr():
    """Capture what llama.cpp logs; yields a function that returns the captured text.

    llama-cpp-python forwards llama.cpp's log to Python's ``sys.stderr`` (a Jupyter stream in
    notebooks), and C code may also write to file descriptor 2 directly, so both are redirected.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    python_log = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as c_log:
        os.dup2(c_log.fileno(), 2)
        try:
            with contextlib.redirect_stderr(python_log):
                yield lambda: python_log.getvalue() + _read_all(c_log)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _read_all(handle) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


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

    with _captured_stderr() as captured_log:
        started = time.perf_counter()
        status = llama_cpp.llama_model_quantize(str(input_path).encode(), str(output_path).encode(),
                                                params)
        seconds = time.perf_counter() - started
        lines = captured_log().splitlines()
    if status != 0:
        Path(output_path).unlink(missing_ok=True)
        tail = "\n".join(lines[-5:])
        raise QuantizeError(f"llama.cpp could not quantize {input_path} to {file_type} "
                            f"(status {status}):\n{tail}")
    return seconds
