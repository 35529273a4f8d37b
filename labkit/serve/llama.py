"""A thin layer over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

The high-level ``llama_cpp.Llama`` owns one sequence at a time. Serving many requests at once
needs the pieces underneath. :class:`LlamaModel` is the model weights and vocabulary.
:class:`LlamaContext` is a KV cache that stores several sequences side by side, fed by a batch in
which every token carries the id of the sequence it belongs to.

>>> model = LlamaModel.load("smollm2")                       # doctest: +SKIP
>>> model.tokenize("Hello world")                            # doctest: +SKIP
[19556, 905]
>>> model.token_bytes(19556)                                 # doctest: +SKIP
b'Hello'
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit import models
from labkit.serve.errors import InvalidRequest
from labkit.native_log import import_llama_cpp

log = logging.getLogger(__name__)

_backend_lock = threading.Lock()
_backend_ready = False


def _llama_cpp():
    """Import llama_cpp and initialise its backend once per process."""
    global _backend_ready
    # llama.cpp logs every tensor it loads; import_llama_cpp sends those lines to logging at DEBUG.
    llama_cpp = import_llama_cpp()

    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids with a role (-1 when the vocabulary has none) and whether to add BOS to prompts."""

    bos: int
    eos: int
    eot: int
    add_bos: bool


class LlamaModel:
    """Weights and vocabulary of one GGUF, shared by every context made from it."""

    def __init__(self, path: Path, handle, llama_cpp):
        self.path = path
        self._lib = llama_cpp
        self._handle = handle
        self._vocab = llama_cpp.llama_model_get_vocab(handle)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(handle)
        self.n_embd = llama_cpp.llama_model_n_embd(handle)
        self.architecture = self.metadata("general.architecture") or "unknown"
        self.chat_template = self.metadata("tokenizer.chat_template")
        lib = llama_cpp
        self.special = SpecialTokens(bos=lib.llama_vocab_bos(self._vocab),
                                     eos=lib.llama_vocab_eos(self._vocab),
                                     eot=lib.llama_vocab_eot(self._vocab),
                                     add_bos=bool(lib.llama_vocab_get_add_bos(self._vocab)))
        self._piece_cache: dict[int, bytes] = {}
        self._control_texts: dict[str, int] | None = None

    @classmethod
    def load(cls, model: str | os.PathLike, *, vocab_only: bool = False) -> "LlamaModel":
        """Load a course alias (``"smollm2"``, ``"gemma3-270m"``) or a GGUF path, weights on the CPU.

        ``vocab_only`` reads only the vocabulary and metadata: enough to tokenize, not to decode.
        """
        llama_cpp = _llama_cpp()
        path = models.resolve_model(model)
        started = time.perf_counter()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        params.vocab_only = vocab_only
        handle = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not handle:
            raise RuntimeError(f"llama.cpp could not load {path}; check that it is a valid GGUF file.")
        log.info("loaded %s (%.0f MB) in %.1f s", path.name, path.stat().st_size / 1e6,
                 time.perf_counter() - started)
        return cls(path, handle, llama_cpp)

    def close(self) -> None:
        """Free the weights; every context made from this model must be closed first."""
        if self._handle is not None:
            self._lib.llama_model_free(self._handle)
            self._handle = None

    # -- metadata --------------------------------------------------------------------------

    def metadata(self, key: str) -> str | None:
        """Return a GGUF metadata value as a string, or None when the file has no such key."""
        size = 256
        while True:
            buffer = ctypes.create_string_buffer(size)
            length = self._lib.llama_model_meta_val_str(self._handle, key.encode(), buffer, size)
            if length < 0:
                return None
            if length < size:
                return buffer.value.decode("utf-8", errors="replace")
            size = length + 1

    # -- tokens ----------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        """Return the token ids of ``text``.

        ``add_bos`` adds BOS only when the vocabulary requires it. ``parse_special`` turns the
        text of control tokens (``<|im_end|>``) into those tokens, which only trusted text may do.
        """
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as error:
            # JSON allows escaped lone surrogates ("\ud800"), which are not valid Unicode text.
            raise InvalidRequest(
                f"the text contains an unpaired surrogate code point at position {error.start} "
                f"({text[error.start]!r}), which is not valid Unicode; send valid UTF-8 text",
                code="invalid_text") from None
        capacity = len(data) + 8
        tokens = (self._lib.llama_token * capacity)()
        count = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity,
                                         add_bos, parse_special)
        if count < 0:  # the buffer was too small; llama.cpp returns minus the size it needs
            capacity = -count
            tokens = (self._lib.llama_token * capacity)()
            count = self._lib.llama_tokenize(self._vocab, data, len(data), tokens, capacity,
                                             add_bos, parse_special)
        return list(tokens[:count])

    def token_bytes(self, token: int) -> bytes:
        """Return the bytes a token adds to the text; control tokens add none."""
        piece = self._piece_cache.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(64)
            length = self._lib.llama_token_to_piece(self._vocab, token, buffer, 64, 0, False)
            if length < 0:
                buffer = ctypes.create_string_buffer(-length)
                length = self._lib.llama_token_to_piece(self._vocab, token, buffer, -length, 0, False)
            piece = buffer.raw[:length]
            self._piece_cache[token] = piece
        return piece

    def detokenize(self, tokens: list[int]) -> str:
        """Return the text of ``tokens`` with control tokens left out."""
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        """Return a token's vocabulary entry as written, control tokens included (``<|im_end|>``)."""
        return self._lib.llama_vocab_get_text(self._vocab, token).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        """Return whether ``token`` ends a generation (EOS, end of turn, ...)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def control_texts(self) -> dict[str, int]:
        """Return the text of every control token mapped to its id, e.g. ``{"<|im_end|>": 2, ...}``.

        These are the texts that ``tokenize(parse_special=True)`` turns into single control
        tokens, so untrusted text containing one of them must not be tokenized that way.
        """
        if self._control_texts is None:
            lib = self._lib
            mask = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_UNKNOWN
            texts = {}
            for token in range(self.n_vocab):
                if lib.llama_vocab_get_attr(self._vocab, token) & mask:
                    text = self.token_text(token)
                    if text:
                        texts[text] = token
            self._control_texts = texts
        return self._control_texts

    # -- contexts --------------------------------------------------------------------------

    def new_context(self, *, n_ctx_per_sequence: int, n_sequences: int, n_batch: int,
                    n_threads: int, embeddings: bool = False) -> "LlamaContext":
        """Create a context whose KV cache stores ``n_sequences`` sequences of ``n_ctx_per_sequence`` tokens."""
        return LlamaContext(self, n_ctx_per_sequence=n_ctx_per_sequence, n_sequences=n_sequences,
                            n_batch=n_batch, n_threads=n_threads, embeddings=embeddings)


class LlamaContext:
    """A KV cache with one stream per sequence id, plus a reusable batch for ``llama_decode``.

    For generation the cache is not unified: each sequence id owns ``n_ctx_per_sequence`` cells,
    so one long request can never take the room another request was promised. An embeddings
    context decodes its sequences in one call and clears them after it, so there they share one
    unified cache of ``n_ctx_per_sequence`` cells.
    """

    def __init__(self, model: LlamaModel, *, n_ctx_per_sequence: int, n_sequences: int,
                 n_batch: int, n_threads: int, embeddings: bool = False):
        lib = model._lib
        self.model = model
        self._lib = lib
        params = lib.llama_context_default_params()
        params.n_ctx = n_ctx_per_sequence if embeddings else n_ctx_per_sequence * n_sequences
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_sequences
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.kv_unified = embeddings
        params.no_perf = True
        if embeddings:
            params.embeddings = True
            params.pooling_type = lib.LLAMA_POOLING_TYPE_MEAN
        self._handle = lib.llama_init_from_model(model._handle, params)
        if not self._handle:
            raise RuntimeError(f"llama.cpp could not create a context of {params.n_ctx} tokens "
                               f"for {model.path.name}; lower n_ctx or the number of sequences.")
        self._memory = lib.llama_get_memory(self._handle)
        self.n_ctx_per_sequence = lib.llama_n_ctx_seq(self._handle)
        self.n_sequences = n_sequences
        self.n_batch = n_batch
        self.embeddings = embeddings
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        self._count = 0

    def close(self) -> None:
        """Free the batch and the KV cache."""
        if self._handle is not None:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._handle)
            self._handle = None

    # -- the batch -------------------------------------------------------------------------

    def clear_batch(self) -> None:
        """Start filling a new batch."""
        self._count = 0

    @property
    def batch_size(self) -> int:
        """Tokens in the batch being filled."""
        return self._count

    def add(self, token: int, position: int, sequence: int, output: bool) -> int:
        """Append one token of ``sequence`` at ``position``; return its row in the batch.

        With ``output`` set, llama.cpp keeps this row's logits (or embedding) after decoding.
        """
        if self._count >= self.n_batch:
            raise ValueError(f"the batch is full ({self.n_batch} tokens); decode it first")
        batch, i = self._batch, self._count
        batch.token[i] = token
        batch.pos[i] = position
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = sequence
        batch.logits[i] = output
        self._count += 1
        return i

    def decode(self) -> None:
        """Run the model on the batch; raise RuntimeError with llama.cpp's status on failure."""
        self._batch.n_tokens = self._count
        status = self._lib.llama_decode(self._handle, self._batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status} on a batch of "
                               f"{self._count} tokens (1 means no free KV cells)")

    def logits(self, row: int) -> np.ndarray:
        """Return the logits of a batch row as a numpy view, valid until the next decode."""
        pointer = self._lib.llama_get_logits_ith(self._handle, row)
        return np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,))

    def sequence_embedding(self, sequence: int) -> np.ndarray:
        """Return the pooled embedding of a sequence after decoding (an embeddings context only)."""
        pointer = self._lib.llama_get_embeddings_seq(self._handle, sequence)
        if not pointer:
            raise RuntimeError(f"no pooled embedding for sequence {sequence}: the context was not "
                               "created with embeddings=True, or the sequence was not decoded")
        return np.ctypeslib.as_array(pointer, shape=(self.model.n_embd,)).copy()

    # -- the KV cache ----------------------------------------------------------------------

    def remove_sequence(self, sequence: int) -> None:
        """Free every KV cell of ``sequence``, so its id can serve a new request."""
        self._lib.llama_memory_seq_rm(self._memory, sequence, -1, -1)

    def sequence_length(self, sequence: int) -> int:
        """Return the number of positions of ``sequence`` in the KV cache (0 when it is free)."""
        return self._lib.llama_memory_seq_pos_max(self._memory, sequence) + 1
