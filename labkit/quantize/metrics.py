"""Measure what quantization costs: identical blocks, weight error, perplexity, speed, agreement.

>>> from labkit.quantize.metrics import compare_blocks, perplexity       # doctest: +SKIP
>>> compare_blocks("labkit-q4_k_m.gguf", "llama-cpp-q4_k_m.gguf").fraction["Q4_K"]   # doctest: +SKIP
1.0
>>> perplexity("model-q8_0.gguf", evaluation_text(), n_tokens=1024).perplexity       # doctest: +SKIP
13.87

Perplexity and generation run the GGUF through llama.cpp (llama-cpp-python), so they measure the
file as llama.cpp reads it. Evaluation text is English prose from CPython's own documentation
(``pydoc_data.topics``): none of labkit's code was tuned on it, but the models may have seen
similar text in pretraining, so compare perplexities between variants rather than with other
published numbers.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit.quantize.formats import get_format
from labkit.quantize.gguf_file import read_gguf

# One thread: llama.cpp's worker threads wait for each other by spinning, so on a machine whose
# cores are busy with other work two threads can decode ten times slower than one (measured on
# the course machine: 6.5 against 49 tokens/s). One thread gives numbers that mean the same
# whatever else runs.
DEFAULT_THREADS = 1


# ---------------------------------------------------------------------------------------------
# Files against files
# ---------------------------------------------------------------------------------------------

@dataclass
class BlockComparison:
    """Blocks that are byte-identical between two GGUF files, counted per tensor type."""

    identical: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    type_mismatches: list[str] = field(default_factory=list)   # tensors whose types differ
    missing: list[str] = field(default_factory=list)           # tensors in only one file
    files_identical: bool = False

    @property
    def fraction(self) -> dict[str, float]:
        return {name: self.identical[name] / self.total[name] for name in self.total if self.total[name]}


def compare_blocks(path: os.PathLike | str, reference_path: os.PathLike | str) -> BlockComparison:
    """Count, per tensor type of ``reference_path``, the blocks whose bytes ``path`` reproduces.

    A tensor that is missing from ``path`` or has another type counts as all blocks different.
    """
    result = BlockComparison()
    with read_gguf(path) as candidate, read_gguf(reference_path) as reference:
        names = {t.name for t in candidate.tensors}
        result.missing = sorted(names ^ {t.name for t in reference.tensors})
        for info in reference.tensors:
            fmt = get_format(info.ggml_type)
            n_blocks = info.n_elements // fmt.block_size
            result.total[fmt.name] = result.total.get(fmt.name, 0) + n_blocks
            result.identical.setdefault(fmt.name, 0)
            if info.name not in names:
                continue
            other = candidate.tensor(info.name)
            if other.ggml_type != info.ggml_type or other.shape != info.shape:
                result.type_mismatches.append(info.name)
                continue
            mine = candidate.tensor_bytes(other).reshape(n_blocks, fmt.type_size)
            theirs = reference.tensor_bytes(info).reshape(n_blocks, fmt.type_size)
            result.identical[fmt.name] += int((mine == theirs).all(axis=1).sum())
    result.files_identical = _same_bytes(Path(path), Path(reference_path))
    return result


def _same_bytes(first: Path, second: Path, chunk: int = 1 << 24) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as a, open(second, "rb") as b:
        while True:
            block = a.read(chunk)
            if block != b.read(chunk):
                return False
            if not block:
                return True


def tensor_errors(baseline_path: os.PathLike | str, path: os.PathLike | str,
                  max_rows: int | None = None) -> dict[str, float]:
    """Relative error ||W_q - W|| / ||W|| of every tensor of ``path`` against the baseline file.

    Tensors are compared after dequantizing both to float32; the norms are computed in float64.
    ``max_rows`` limits each tensor to its first rows, to keep live demonstrations quick.
    """
    errors = {}
    rows = slice(None) if max_rows is None else slice(0, max_rows)
    with read_gguf(baseline_path) as baseline, read_gguf(path) as model:
        for info in model.tensors:
            reference = baseline.tensor_values(info.name, rows).astype(np.float64)
            values = model.tensor_values(info, rows).astype(np.float64)
            norm = np.linalg.norm(reference)
            errors[info.name] = float(np.linalg.norm(values - reference) / norm) if norm else 0.0
    return errors


# ---------------------------------------------------------------------------------------------
# Running the model through llama.cpp
# ---------------------------------------------------------------------------------------------

def evaluation_text(n_chars: int = 40_000, skip_chars: int = 0) -> str:
    """Return English prose from CPython's documentation topics, in a fixed order.

    ``skip_chars`` starts later in the same text, so callers can keep two passages apart.
    """
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[name].strip() for name in sorted(topics))
    return text[skip_chars:skip_chars + n_chars]


def _load(path: os.PathLike | str, n_ctx: int, logits_all: bool, threads: int):
    from labkit.native_log import REDIRECT_LOCK, import_llama_cpp

    llama_cpp = import_llama_cpp()
    with REDIRECT_LOCK:
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_threads=threads,
                               n_threads_batch=threads, logits_all=logits_all, verbose=False, seed=0)


@dataclass
class PerplexityResult:
    perplexity: float
    n_scored: int           # tokens whose probability entered the average
    seconds: float


def perplexity(path: os.PathLike | str, text: str, *, n_tokens: int = 2048, n_ctx: int = 512,
               threads: int = DEFAULT_THREADS) -> PerplexityResult:
    """Perplexity of the model at ``path`` on the first ``n_tokens`` tokens of ``text``.

    The tokens are cut into windows of ``n_ctx``. As in llama.cpp's ``llama-perplexity``, only
    the second half of each window is scored, so every scored token has at least ``n_ctx / 2``
    tokens of context. Memory: llama-cpp-python keeps ``n_ctx x vocabulary`` float32 logits.
    """
    llm = _load(path, n_ctx, logits_all=True, threads=threads)
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False)[:n_tokens]
    if len(tokens) < n_ctx:
        raise ValueError(f"the text has {len(tokens)} tokens, fewer than one window of {n_ctx}")

    started = time.perf_counter()
    total_nll = 0.0
    n_scored = 0
    first_scored = n_ctx // 2
    for start in range(0, len(tokens) - n_ctx + 1, n_ctx):
        window = tokens[start:start + n_ctx]
        llm.reset()
        llm.eval(window)
        logits = np.asarray(llm.scores[first_scored - 1:n_ctx - 1], dtype=np.float64)
        targets = np.asarray(window[first_scored:])
        peak = logits.max(axis=1, keepdims=True)
        log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
        total_nll += float((log_norm - logits[np.arange(len(targets)), targets]).sum())
        n_scored += len(targets)
    seconds = time.perf_counter() - started
    llm.close()
    return PerplexityResult(math.exp(total_nll / n_scored), n_scored, seconds)


@dataclass
class GenerationResult:
    tokens: list[list[int]]      # the greedy continuation of each prompt
    tokens_per_second: float     # decode speed, prompt processing excluded


def greedy_generate(path: os.PathLike | str, prompts: list[str], *, n_tokens: int = 32,
                    n_ctx: int = 512, threads: int = DEFAULT_THREADS) -> GenerationResult:
    """Continue each prompt with the most probable token, ``n_tokens`` times, through llama.cpp.

    The loop takes the argmax of the logits itself, so no sampler setting can change the
    result, and it times only the one-token decode steps.
    """
    import llama_cpp

    llm = _load(path, n_ctx, logits_all=False, threads=threads)
    n_vocab = llm.n_vocab()
    continuations = []
    decode_seconds = 0.0
    for prompt in prompts:
        llm.reset()
        llm.eval(llm.tokenize(prompt.encode("utf-8"), add_bos=True))
        generated = []
        started = time.perf_counter()
        for _ in range(n_tokens):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                           shape=(n_vocab,))
            token = int(np.argmax(logits))
            generated.append(token)
            llm.eval([token])
        decode_seconds += time.perf_counter() - started
        continuations.append(generated)
    llm.close()
    return GenerationResult(continuations, len(prompts) * n_tokens / decode_seconds)


@dataclass
class Agreement:
    identical_fraction: float        # prompts whose whole continuation equals the baseline's
    mean_matching_prefix: float      # tokens generated before the first difference, on average


def greedy_agreement(baseline: list[list[int]], candidate: list[list[int]]) -> Agreement:
    """Compare two sets of greedy continuations token by token.

    >>> greedy_agreement([[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 9, 6]])
    Agreement(identical_fraction=0.5, mean_matching_prefix=2.0)
    """
    prefixes = []
    for expected, got in zip(baseline, candidate, strict=True):
        matching = 0
        for a, b in zip(expected, got):
            if a != b:
                break
            matching += 1
        prefixes.append(matching)
    identical = sum(1 for a, b in zip(baseline, candidate) if a == b)
    return Agreement(identical / len(baseline), sum(prefixes) / len(prefixes))


def evaluation_prompts(n_prompts: int = 8, n_chars: int = 200) -> list[str]:
    """Return the openings of CPython documentation topics, spread over the alphabet."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    step = max(1, len(names) // n_prompts)
    return [" ".join(topics[name].split())[:n_chars] for name in names[::step][:n_prompts]]


# ---------------------------------------------------------------------------------------------
# The measured table
# ---------------------------------------------------------------------------------------------

@dataclass
class VariantMeasurement:
    """One row of the quantization table: a model file measured against the baseline."""

    name: str
    file_bytes: int
    bits_per_weight: float          # tensor data only, as llama.cpp reports it
    median_error: float             # median relative error over the 2-D weight tensors
    max_error: float
    perplexity: float
    tokens_per_second: float
    identical_fraction: float       # greedy continuations equal to the baseline's
    mean_matching_prefix: float

    def as_row(self, baseline: "VariantMeasurement | None" = None) -> dict:
        row = {
            "variant": self.name,
            "size (MB)": round(self.file_bytes / 1e6, 1),
            "bits/weight": round(self.bits_per_weight, 2),
            "median rel. error": f"{self.median_error:.2%}",
            "max rel. error": f"{self.max_error:.2%}",
            "perplexity": round(self.perplexity, 3),
            "decode tok/s": round(self.tokens_per_second, 1),
            "same greedy output": f"{self.identical_fraction:.0%}",
            "tokens before first difference": round(self.mean_matching_prefix, 1),
        }
        if baseline is not None:
            row["size vs baseline"] = f"{self.file_bytes / baseline.file_bytes:.0%}"
            row["perplexity change"] = f"{self.perplexity - baseline.perplexity:+.3f}"
        return row


def measure_variants(baseline_path: os.PathLike | str, variants: dict[str, os.PathLike | str], *,
                     baseline_name: str = "baseline", n_tokens: int = 2048, n_ctx: int = 512, n_prompts: int = 8,
                     n_generate: int = 32, max_rows: int | None = None,
                     threads: int = DEFAULT_THREADS) -> list[VariantMeasurement]:
    """Measure the baseline and each variant: size, bits per weight, error, perplexity, speed.

    ``variants`` maps a display name to a file. The baseline itself is measured first: its error
    is 0 and its greedy output agrees with itself by definition.
    """
    text = evaluation_text()
    prompts = evaluation_prompts(n_prompts)
    reference = greedy_generate(baseline_path, prompts, n_tokens=n_generate, threads=threads)

    measurements = []
    for name, path in [(baseline_name, baseline_path), *variants.items()]:
        with read_gguf(path) as model:
            bits = 8 * model.tensor_data_bytes / model.n_elements
            matrices = {t.name for t in model.tensors if len(t.shape) >= 2}
        errors = tensor_errors(baseline_path, path, max_rows=max_rows) if path != baseline_path else {}
        matrix_errors = [e for n, e in errors.items() if n in matrices] or [0.0]
        generated = reference if path == baseline_path else \
            greedy_generate(path, prompts, n_tokens=n_generate, threads=threads)
        agreement = greedy_agreement(reference.tokens, generated.tokens)
        result = perplexity(path, text, n_tokens=n_tokens, n_ctx=n_ctx, threads=threads)
        measurements.append(VariantMeasurement(
            name, Path(path).stat().st_size, bits, float(np.median(matrix_errors)),
            float(np.max(matrix_errors)), result.perplexity, generated.tokens_per_second,
            agreement.identical_fraction, agreement.mean_matching_prefix,
        ))
    return measurements
