"""The unblocked float formats: F32, F16 and BF16 (a "block" is one value).

F16 keeps 10 mantissa bits and 5 exponent bits, so its largest finite value is 65504. BF16 keeps
float32's 8 exponent bits and only 7 mantissa bits: it covers float32's range but rounds coarser.

>>> import numpy as np
>>> from labkit.quantize import quantize
>>> quantize(np.float32([1 + 2**-9]), "BF16").view(np.uint16).tolist()   # ties go to even
[16256]
>>> quantize(np.float32([70000.0]), "F16").view(np.float16).tolist()     # beyond F16's range
[inf]
"""

from __future__ import annotations

import numpy as np
from gguf.constants import GGMLQuantizationType

from labkit.quantize.formats import BlockFormat


class F32(BlockFormat):
    ggml_type = GGMLQuantizationType.F32
    block_size = 1
    layout = np.dtype("<f4")
    summary = "IEEE float32"

    def quantize_blocks(self, blocks):
        return blocks[:, 0]

    def dequantize_blocks(self, records):
        return records.astype(np.float32)[:, None]


class F16(BlockFormat):
    ggml_type = GGMLQuantizationType.F16
    block_size = 1
    layout = np.dtype("<f2")
    summary = "IEEE half: sign, 5-bit exponent, 10-bit mantissa"

    def quantize_blocks(self, blocks):
        # numpy rounds float32 to float16 to nearest-even, subnormals included, as ggml does.
        return blocks[:, 0].astype(np.float16)

    def dequantize_blocks(self, records):
        return records.astype(np.float32)[:, None]


class BF16(BlockFormat):
    ggml_type = GGMLQuantizationType.BF16
    block_size = 1
    layout = np.dtype("<u2")
    summary = "bfloat16: the top 16 bits of a float32, rounded to nearest-even"

    def quantize_blocks(self, blocks):
        bits = blocks[:, 0].view(np.uint32)
        # Adding 0x7fff plus the lowest kept bit and dropping 16 bits rounds half to even. Finite
        # inputs cannot overflow uint32 here (NaN is rejected before quantizing).
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        return rounded.astype(np.uint16)

    def dequantize_blocks(self, records):
        return (records.astype(np.uint32) << np.uint32(16)).view(np.float32)[:, None]
