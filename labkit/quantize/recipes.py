"""Which type each tensor of a model gets: the F16, BF16, Q8_0 and Q4_K_M recipes of llama.cpp.

A "file type" such as Q4_K_M is a recipe, not one format. These rules reproduce
``llama_tensor_get_type`` in llama.cpp's ``src/llama-quant.cpp`` (llama-cpp-python 0.3.36) for
dense models quantized without an importance matrix:

- only tensors with at least 2 dimensions whose names end in ``weight`` are converted, so norms,
  1-D tensors and a list of small special tensors keep their type;
- Q4_K_M uses Q4_K by default and Q6_K for ``output.weight`` (and for ``token_embd.weight`` when
  the model has no ``output.weight``, i.e. ties its embeddings), and for ``attn_v`` and
  ``ffn_down`` in the layers where ``use_more_bits`` holds: the first and last eighth and every
  third layer in between;
- a row length that is not a multiple of the block size falls back: Q4_K to Q5_0, Q6_K to Q8_0,
  and to F16 if 32 does not divide it either.

>>> use_more_bits(0, 30), use_more_bits(5, 30), use_more_bits(29, 30)
(True, True, True)
>>> [i for i in range(30) if not use_more_bits(i, 30)][:6]
[3, 4, 6, 7, 9, 10]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

from labkit.quantize.formats import QuantizeError
from labkit.quantize.gguf_file import GGUFFile, TensorInfo


@dataclass(frozen=True)
class FileType:
    """A whole-model recipe: its name, ``general.file_type`` code and default tensor type."""

    name: str
    code: int              # llama_ftype, stored as general.file_type
    default_type: T

    @property
    def quantized(self) -> bool:
        return self.default_type not in (T.F32, T.F16, T.BF16)


FILE_TYPES = {
    "F16": FileType("F16", 1, T.F16),
    "BF16": FileType("BF16", 32, T.BF16),
    "Q8_0": FileType("Q8_0", 7, T.Q8_0),
    "Q4_K_M": FileType("Q4_K_M", 15, T.Q4_K),
}

QUANTIZATION_VERSION = 2   # GGML_QNT_VERSION, stored as general.quantization_version

# Names that llama.cpp never quantizes even though they are 2-D weights (substring matches).
_KEEP_SUBSTRINGS = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
    "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
    "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
    "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
)
_KEEP_NAMES = ("position_embd.weight", "token_types.weight")
_TOKEN_EMBEDDING_NAMES = ("token_embd.weight", "per_layer_token_embd.weight")
_LAYER_NUMBER = re.compile(r"blk\.\s*([+-]?\d+)")


@dataclass(frozen=True)
class TensorPlan:
    """The decision for one tensor: its source info, the target type and the reason."""

    info: TensorInfo
    target: T
    reason: str

    @property
    def converts(self) -> bool:
        return self.target != self.info.ggml_type


def use_more_bits(layer: int, n_layers: int) -> bool:
    """Return whether Q4_K_M gives this layer's attn_v / ffn_down more bits (Q6_K).

    The first and last eighth of the layers qualify, and every third layer in between. (C's
    ``%`` differs from Python's for negative numbers, but the difference is negative only for
    layers that the first condition already selects.)
    """
    return layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2


def llama_cpp_order(tensors: list[TensorInfo]) -> list[TensorInfo]:
    """Sort tensors the way llama.cpp's quantizer writes them: by layer number, then by name.

    Tensors outside ``blk.N.`` count as layer -1, so they come first.
    """
    def key(info: TensorInfo):
        match = _LAYER_NUMBER.match(info.name)
        return (int(match.group(1)) if match else -1, info.name.encode())

    return sorted(tensors, key=key)


def allows_quantization(info: TensorInfo) -> bool:
    """Return whether llama.cpp would convert this tensor at all (see the module docstring)."""
    if _ggml_n_dims(info) < 2:
        return False
    name = info.name
    if not name.endswith("weight") or name in _KEEP_NAMES:
        return False
    return not any(part in name for part in _KEEP_SUBSTRINGS)


def _ggml_n_dims(info: TensorInfo) -> int:
    """ggml's dimension count: trailing dimensions of size 1 (outermost in numpy order) don't count."""
    dims = list(reversed(info.shape))           # ggml order: the row length first
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return len(dims)


def _fallback(info: TensorInfo, target: T) -> tuple[T, str]:
    """Replace a type whose block size does not divide the row length, as llama.cpp does."""
    block_size = GGML_QUANT_SIZES[target][0]
    if info.row_length % block_size == 0:
        return target, ""
    replacement = {T.Q4_K: T.Q5_0, T.Q6_K: T.Q8_0}.get(target, target)
    if info.row_length % GGML_QUANT_SIZES[replacement][0]:
        replacement = T.F16
    return replacement, (f"fallback: rows of {info.row_length} are not a multiple of "
                         f"{block_size} ({target.name})")


def plan_model(model: GGUFFile, file_type: str | FileType) -> list[TensorPlan]:
    """Choose every tensor's target type, in the order llama.cpp's quantizer writes them."""
    recipe = FILE_TYPES[file_type] if isinstance(file_type, str) else file_type
    arch = model.architecture or "unknown"
    expert_count = model.fields.get(f"{arch}.expert_count")
    if recipe.quantized and expert_count is not None and expert_count.value > 1:
        raise QuantizeError(f"{model.path}: {arch} is a mixture of experts "
                            f"({expert_count.value} experts); labkit's recipes cover dense models "
                            "only, so use llama.cpp's llama-quantize for it")
    if recipe.quantized and arch in ("falcon", "glm5-next"):
        raise QuantizeError(f"{model.path}: llama.cpp has {arch}-specific rules (Q5_K, Q8_0), which "
                            "labkit does not implement; use llama.cpp's llama-quantize for it")
    if recipe.quantized and _is_llama_70b(model, arch):
        raise QuantizeError(f"{model.path}: llama.cpp gives 70B llama models Q5_K attention values, "
                            "which labkit does not implement; use llama.cpp's llama-quantize for it")

    ordered = llama_cpp_order(model.tensors)
    names = {t.name for t in ordered}
    tied_embeddings = "output.weight" not in names
    block_count = model.fields.get(f"{arch}.block_count")
    n_layers = int(block_count.value) if block_count is not None else 0
    n_attention_v = sum(1 for t in ordered if _is_attention_v(t.name))
    attention_v_seen = 0
    ffn_down_seen = 0

    plans = []
    for info in ordered:
        if not allows_quantization(info):
            plans.append(TensorPlan(info, info.ggml_type, "kept: not a quantizable weight"))
            continue
        if not recipe.quantized:
            plans.append(TensorPlan(info, recipe.default_type, "default"))
            continue

        target, reason = recipe.default_type, "default"
        name = info.name
        if name == "output.weight" or (tied_embeddings and name in _TOKEN_EMBEDDING_NAMES):
            if info.row_length % GGML_QUANT_SIZES[target][0]:
                target, reason = T.Q8_0, "output: rows not whole blocks of the default type"
            elif target != T.Q8_0:
                target, reason = T.Q6_K, "output" if name == "output.weight" else "tied embeddings"
        elif _is_attention_v(name):
            if recipe.name == "Q4_K_M" and use_more_bits(attention_v_seen, n_attention_v):
                target, reason = T.Q6_K, f"attn_v {attention_v_seen} of {n_attention_v}: more bits"
            attention_v_seen += 1
        elif name in _TOKEN_EMBEDDING_NAMES:
            pass                    # untied embeddings keep the default type
        elif "ffn_down" in name:
            if recipe.name == "Q4_K_M" and use_more_bits(ffn_down_seen, n_layers):
                target, reason = T.Q6_K, f"ffn_down {ffn_down_seen} of {n_layers}: more bits"
            ffn_down_seen += 1

        fallback, why = _fallback(info, target)
        plans.append(TensorPlan(info, fallback, why or reason))
    return plans


def _is_llama_70b(model: GGUFFile, arch: str) -> bool:
    """llama.cpp's 70B test: a llama model of 80 layers with grouped-query attention."""
    def value(key: str):
        field = model.fields.get(f"{arch}.{key}")
        return None if field is None else field.value
    return arch == "llama" and value("block_count") == 80 and \
        value("attention.head_count") != value("attention.head_count_kv")


def _is_attention_v(name: str) -> bool:
    # llama.cpp treats fused attn_qkv and attn_kv_b like attn_v: same counter, same Q6_K rule.
    return any(part in name for part in ("attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight"))
