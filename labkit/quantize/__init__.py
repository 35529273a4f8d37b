"""GGUF quantization in numpy, byte-identical to llama.cpp's reference quantizer.

- :mod:`~labkit.quantize.formats`: the block-format interface, ``quantize`` and ``dequantize``;
  the formats themselves live in :mod:`~labkit.quantize.float_formats` (F32, F16, BF16),
  :mod:`~labkit.quantize.legacy` (Q8_0, Q4_0, Q4_1, Q5_0) and :mod:`~labkit.quantize.kquants`
  (Q4_K, Q6_K, with a readable twin in :mod:`~labkit.quantize.kquants_reference`).
- :mod:`~labkit.quantize.gguf_file`: reading and checking a GGUF file in bounded memory.
- :mod:`~labkit.quantize.recipes`: which type each tensor gets for F16, Q8_0 and Q4_K_M.
- :mod:`~labkit.quantize.model`: whole-model quantization (``labkit quantize``).
- :mod:`~labkit.quantize.metrics`: error, perplexity, speed and agreement measurements.

>>> import numpy as np
>>> from labkit.quantize import quantize, dequantize
>>> weights = np.random.default_rng(0).normal(size=(4, 256)).astype(np.float32)
>>> packed = quantize(weights, "Q4_K")
>>> packed.shape                        # 4 rows of one 144-byte super-block each
(4, 144)
>>> float(np.abs(dequantize(packed, "Q4_K") - weights).max()) < 0.3
True
"""

from labkit.quantize.formats import (
    FORMATS,
    BlockFormat,
    NonFiniteValuesError,
    QuantizeError,
    dequantize,
    get_format,
    quantize,
)
from labkit.quantize import float_formats, legacy, kquants  # noqa: F401  (registers the formats)

__all__ = [
    "FORMATS",
    "BlockFormat",
    "NonFiniteValuesError",
    "QuantizeError",
    "dequantize",
    "get_format",
    "quantize",
]
