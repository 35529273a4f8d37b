"""Choose the next token from a row of logits: penalties, temperature, top-k, top-p, a seeded draw.

Both endpoints turn their request into one :class:`SamplingParams`, so a default left out of a
request means the same thing in ``/v1/completions`` and ``/v1/chat/completions``:

=====================  =========  ==========================================================
parameter              default    meaning
=====================  =========  ==========================================================
temperature            1.0        divides the logits; 0 picks the most likely token (greedy)
top_p                  1.0        keep the smallest set of likeliest tokens holding this mass
top_k                  0          keep only the k likeliest tokens; 0 keeps all
presence_penalty       0.0        subtracted once from every token already generated
frequency_penalty      0.0        subtracted per earlier occurrence of a generated token
logit_bias             {}         added to the logit of the given token ids
seed                   None       None draws a fresh seed, so the output is random
=====================  =========  ==========================================================

The steps run in that order. Bias and penalties change the raw logits. Temperature divides them,
and tokens more than ``LOGIT_CUTOFF`` tempered logits below the maximum drop out. Top-k and top-p
then trim the softmax. Finally one uniform draw ``u`` from the request's own random generator
picks the first token, in id order, whose cumulative probability exceeds ``u`` times the kept mass. Each sequence
owns its generator (seeded from ``seed`` and the choice index), so the draws of a seeded request
do not depend on which other requests share its batch.

NOTE: the logits themselves can depend on the batch. With llama-cpp-python 0.3.36 on x86 CPUs,
SmolLM2's logits are bit-identical alone and in a batch of 8, but Gemma 3's differ in the last
digits, so a seeded Gemma request repeats exactly only when its batch looks the same (for
example, when it runs alone).

>>> import numpy as np
>>> logits = np.array([2.0, 1.0, 0.5, -1.0], dtype=np.float32)
>>> TokenSampler(SamplingParams(temperature=0)).sample(logits)
0
>>> TokenSampler(SamplingParams(top_k=1, seed=7)).sample(logits)
0

:func:`sample_reference` is the same rule written as plain loops over a Python list; the tests
check that both pick the same tokens.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from labkit.serve.errors import InvalidRequest

# Ranges of the OpenAI API, shared by the HTTP schemas and the engine's own checks.
TEMPERATURE_MAX = 2.0
PENALTY_LIMIT = 2.0
LOGIT_BIAS_LIMIT = 100.0
TOP_LOGPROBS_MAX = 20

# Tokens whose tempered logit is this far below the maximum (probability below e^-30, about
# 1e-13, of the likeliest token's) are never sampled. Leaving them out keeps sampling from
# sorting and summing a whole 262,144-token vocabulary on every step.
LOGIT_CUTOFF = 30.0


@dataclass
class SamplingParams:
    """Sampling settings of one sequence (defaults and order of steps: see the module docstring)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None

    def validate(self, n_vocab: int | None = None) -> None:
        """Raise :class:`InvalidRequest` naming the first field that is out of range."""
        checks = [
            ("temperature", 0.0 <= self.temperature <= TEMPERATURE_MAX,
             f"must be between 0 and {TEMPERATURE_MAX:g}"),
            ("top_p", 0.0 < self.top_p <= 1.0, "must be greater than 0 and at most 1"),
            ("top_k", self.top_k >= 0, "must be 0 (disabled) or a positive number of tokens"),
            ("presence_penalty", abs(self.presence_penalty) <= PENALTY_LIMIT,
             f"must be between -{PENALTY_LIMIT:g} and {PENALTY_LIMIT:g}"),
            ("frequency_penalty", abs(self.frequency_penalty) <= PENALTY_LIMIT,
             f"must be between -{PENALTY_LIMIT:g} and {PENALTY_LIMIT:g}"),
        ]
        for name, ok, rule in checks:
            if not ok or (isinstance(getattr(self, name), float) and math.isnan(getattr(self, name))):
                raise InvalidRequest(f"{name} {rule}; got {getattr(self, name)!r}.", param=name)

        for token, bias in self.logit_bias.items():
            if n_vocab is not None and not 0 <= token < n_vocab:
                raise InvalidRequest(f"logit_bias names token id {token}, but the vocabulary has "
                                     f"ids 0 to {n_vocab - 1}.", param="logit_bias")
            if not abs(bias) <= LOGIT_BIAS_LIMIT:
                raise InvalidRequest(f"logit_bias values must be between -{LOGIT_BIAS_LIMIT:g} and "
                                     f"{LOGIT_BIAS_LIMIT:g}; got {bias!r} for token {token}.",
                                     param="logit_bias")


def draw_seed() -> int:
    """Return a fresh random seed for a request that did not send one."""
    return secrets.randbits(63)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return ``log(softmax(logits))`` as float32, stable for large logits.

    >>> log_softmax(np.array([0.0, 0.0], dtype=np.float32)).round(4).tolist()
    [-0.6931, -0.6931]
    """
    # float32 keeps this under a millisecond for Gemma's 262,144 logits; the sum is in float64.
    shifted = logits - np.max(logits)
    return shifted - np.float32(math.log(float(np.exp(shifted).sum(dtype=np.float64))))


class TokenSampler:
    """Sample the tokens of one sequence with numpy; keeps the counts the penalties need."""

    def __init__(self, params: SamplingParams, *, choice_index: int = 0):
        self.params = params
        seed = params.seed if params.seed is not None else draw_seed()
        self.rng = np.random.default_rng([seed, choice_index])
        self.counts: Counter[int] = Counter()
        self._bias_ids = np.fromiter(params.logit_bias.keys(), dtype=np.int64)
        self._bias_values = np.fromiter(params.logit_bias.values(), dtype=np.float32)

    def adjust(self, logits: np.ndarray) -> np.ndarray:
        """Return a copy of the logits after logit bias and the presence and frequency penalties."""
        adjusted = np.array(logits, dtype=np.float32)
        if self._bias_ids.size:
            adjusted[self._bias_ids] += self._bias_values
        if self.counts and (self.params.presence_penalty or self.params.frequency_penalty):
            ids = np.fromiter(self.counts.keys(), dtype=np.int64)
            occurrences = np.fromiter(self.counts.values(), dtype=np.float32)
            adjusted[ids] -= np.float32(self.params.frequency_penalty) * occurrences
            adjusted[ids] -= np.float32(self.params.presence_penalty)
        return adjusted

    def sample(self, logits: np.ndarray) -> int:
        """Pick the next token from one row of logits and remember it for the penalties."""
        token = self._pick(self.adjust(logits))
        self.counts[token] += 1
        return token

    def _pick(self, adjusted: np.ndarray) -> int:
        params = self.params
        if params.temperature == 0.0:
            return int(np.argmax(adjusted))

        # Work on the tokens within reach of the maximum: a few hundred for a real model instead
        # of the whole vocabulary. The ids come out in ascending order.
        top = float(adjusted.max())
        ids = np.flatnonzero(adjusted >= top - LOGIT_CUTOFF * params.temperature)
        probs = np.exp((adjusted[ids].astype(np.float64) - top) / params.temperature)
        probs /= probs.sum()

        kept = _likeliest(probs, ids, params.top_k, params.top_p)
        if kept is not None:
            kept.sort()  # the draw walks the kept tokens in id order, like the reference
            ids, probs = ids[kept], probs[kept]
        cumulative = np.cumsum(probs)
        u = self.rng.random()
        index = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
        index = min(index, len(cumulative) - 1)  # u * total can round up to the total itself
        return int(ids[index])


def _likeliest(probs: np.ndarray, ids: np.ndarray, top_k: int, top_p: float) -> np.ndarray | None:
    """Return positions (into ``probs``) that survive top-k then top-p, or None when all survive.

    Ties between equal probabilities go to the lower token id, as in the reference.
    """
    if top_k <= 0 and top_p >= 1.0:
        return None
    candidates = np.arange(probs.size)
    if 0 < top_k < probs.size // 4:
        # Partition first, so only the top k (plus ties at the cut) get sorted.
        threshold = probs[np.argpartition(-probs, top_k - 1)[top_k - 1]]
        candidates = np.flatnonzero(probs >= threshold)
    order = candidates[np.lexsort((ids[candidates], -probs[candidates]))]  # likeliest first
    if 0 < top_k < order.size:
        order = order[:top_k]
    if top_p < 1.0:
        cumulative = np.cumsum(probs[order])
        size = int(np.searchsorted(cumulative, top_p * cumulative[-1], side="left")) + 1
        order = order[:size]
    return order


def sample_reference(logits: list[float], params: SamplingParams, u: float,
                     counts: dict[int, int] | None = None) -> int:
    """Pick a token with plain Python loops; the readable twin of :meth:`TokenSampler.sample`.

    ``u`` is the uniform draw in [0, 1) that the numpy sampler would take from its generator, and
    ``counts`` the earlier occurrences of each generated token.

    >>> sample_reference([2.0, 1.0, 0.5], SamplingParams(top_k=2), u=0.9)
    1
    """
    counts = counts or {}

    # 1. Bias and penalties on the raw logits.
    adjusted = [float(x) for x in logits]
    for token, bias in params.logit_bias.items():
        adjusted[token] += bias
    for token, count in counts.items():
        adjusted[token] -= params.frequency_penalty * count + params.presence_penalty

    # 2. Temperature 0 is greedy: the first maximum wins.
    if params.temperature == 0.0:
        return max(range(len(adjusted)), key=lambda i: (adjusted[i], -i))

    # 3. Softmax of the tempered logits of the tokens within LOGIT_CUTOFF of the maximum.
    top = max(adjusted)
    within = [i for i in range(len(adjusted)) if adjusted[i] >= top - LOGIT_CUTOFF * params.temperature]
    weights = {i: math.exp((adjusted[i] - top) / params.temperature) for i in within}
    total = sum(weights.values())
    probs = {i: w / total for i, w in weights.items()}

    # 4. Top-k, then top-p on what is left (likeliest first, ties to the lower id).
    ranked = sorted(within, key=lambda i: (-probs[i], i))
    if params.top_k > 0:
        ranked = ranked[:params.top_k]
    if params.top_p < 1.0:
        mass = sum(probs[i] for i in ranked)
        nucleus, cumulative = [], 0.0
        for i in ranked:
            nucleus.append(i)
            cumulative += probs[i]
            if cumulative >= params.top_p * mass:
                break
        ranked = nucleus

    # 5. Walk the kept tokens in id order until the cumulative probability passes u.
    kept = sorted(ranked)
    mass = sum(probs[i] for i in kept)
    cumulative = 0.0
    for i in kept:
        cumulative += probs[i]
        if cumulative > u * mass:
            return i
    return kept[-1]
