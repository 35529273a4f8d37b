"""Sentence embeddings from a generative GGUF: the mean of its last hidden states, L2-normalised.

A second llama.cpp context on the same weights runs with ``embeddings=True`` and mean pooling, so
embedding requests never take KV cells from the generation scheduler.

>>> embedder = Embedder(LlamaModel.load("smollm2"), n_ctx=512, n_threads=2)   # doctest: +SKIP
>>> vectors = embedder.embed([[19556, 905]])                                  # doctest: +SKIP
>>> vectors.shape, round(float((vectors[0] ** 2).sum()), 3)                    # doctest: +SKIP
((1, 576), 1.0)

A decoder-only chat model was not trained to embed, so these vectors order texts by similarity
only roughly. They are still real vectors from a local model, which is what the course needs.
"""

from __future__ import annotations

import threading

import numpy as np

# Sequences pooled in one decode call.
_SEQUENCES_PER_CALL = 8


class Embedder:
    """Mean-pooled embeddings of token sequences from a :class:`labkit.serve.llama.LlamaModel`."""

    def __init__(self, model, *, n_ctx: int, n_threads: int):
        self.model = model
        self.n_ctx = n_ctx
        # Pooling needs a whole sequence in one batch, so a batch takes up to n_ctx tokens. The
        # sequences of one call share those n_ctx cells.
        self.context = model.new_context(n_ctx_per_sequence=n_ctx, n_sequences=_SEQUENCES_PER_CALL,
                                         n_batch=n_ctx, n_threads=n_threads, embeddings=True)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Free the embedding context."""
        self.context.close()

    def embed(self, inputs: list[list[int]]) -> np.ndarray:
        """Return one unit-length vector per token sequence, shape (len(inputs), n_embd).

        Every sequence must be non-empty and at most ``n_ctx`` tokens long.
        """
        vectors = np.zeros((len(inputs), self.model.n_embd), dtype=np.float32)
        with self._lock:
            start = 0
            while start < len(inputs):
                group = self._next_group(inputs, start)
                self._embed_group(inputs, group, vectors)
                start = group[-1] + 1
        return vectors

    def _next_group(self, inputs: list[list[int]], start: int) -> list[int]:
        """Return indices of the inputs that fit together in one decode call, starting at ``start``."""
        group, tokens = [start], len(inputs[start])
        for i in range(start + 1, min(len(inputs), start + _SEQUENCES_PER_CALL)):
            if tokens + len(inputs[i]) > self.n_ctx:
                break
            group.append(i)
            tokens += len(inputs[i])
        return group

    def _embed_group(self, inputs: list[list[int]], group: list[int], vectors: np.ndarray) -> None:
        context = self.context
        context.clear_batch()
        for seq_id, i in enumerate(group):
            for position, token in enumerate(inputs[i]):
                context.add(token, position, seq_id, True)
        try:
            context.decode()
            for seq_id, i in enumerate(group):
                vector = context.sequence_embedding(seq_id)
                vectors[i] = vector / max(float(np.linalg.norm(vector)), 1e-12)
        finally:
            for seq_id in range(len(group)):
                context.remove_sequence(seq_id)
