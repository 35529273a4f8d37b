"""llama.cpp's own quantizer for one array, called through ctypes (the expected bytes in tests).

``ggml_quantize_chunk`` is the function llama.cpp's whole-file quantizer calls for every tensor;
without an importance matrix it runs ggml's reference quantizers. ``dequantize_row_*`` are the
reference dequantizers. Both live in ``libggml-base.so`` inside the installed llama-cpp-python.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType


@functools.cache
def _library() -> ctypes.CDLL:
    import llama_cpp

    path = Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"
    library = ctypes.CDLL(str(path))
    library.ggml_quantize_chunk.restype = ctypes.c_size_t
    library.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                            ctypes.c_void_p]
    return library


def ggml_quantize(values: np.ndarray, type_name: str) -> np.ndarray:
    """Quantize float32 rows (last axis) with ggml; returns uint8 rows."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    ggml_type = GGMLQuantizationType[type_name]
    block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    n_per_row = values.shape[-1]
    n_rows = values.size // n_per_row
    out = np.zeros(n_rows * n_per_row // block_size * type_size, dtype=np.uint8)
    written = _library().ggml_quantize_chunk(int(ggml_type), values.ctypes.data, out.ctypes.data,
                                             0, n_rows, n_per_row, None)
    assert written == out.size
    return out.reshape(*values.shape[:-1], -1)


def ggml_dequantize(data: np.ndarray, type_name: str) -> np.ndarray:
    """Dequantize uint8 rows with ggml's reference ``dequantize_row_*``; returns float32 rows."""
    data = np.ascontiguousarray(data, dtype=np.uint8)
    ggml_type = GGMLQuantizationType[type_name]
    block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    n = data.size // type_size * block_size
    out = np.zeros(n, dtype=np.float32)
    library = _library()
    if type_name == "F16":
        function = library.ggml_fp16_to_fp32_row
    elif type_name == "BF16":
        function = library.ggml_bf16_to_fp32_row
    else:
        function = getattr(library, "dequantize_row_" + type_name.lower().replace("_k", "_K"))
    function.restype = None
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    function(data.ctypes.data, out.ctypes.data, n)
    return out.reshape(*data.shape[:-1], -1)
