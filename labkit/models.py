"""Load the course's real GGUF models with llama.cpp (through llama-cpp-python).

>>> from labkit.models import load_model
>>> llm = load_model("smollm2")                                      # doctest: +SKIP
>>> llm.create_completion("The capital of France is", max_tokens=3, temperature=0)["choices"][0]["text"]
' Paris.'                                                            # doctest: +SKIP

The model file is checked first (see :mod:`labkit.assets`), so a missing or corrupt file raises
:class:`labkit.assets.AssetError` with the command that fixes it, instead of an error from inside
llama.cpp.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from labkit import assets
from labkit.native_log import REDIRECT_LOCK, import_llama_cpp

log = logging.getLogger(__name__)

# Two threads match the two cores of the course machines; more threads than cores slows decoding.
DEFAULT_THREADS = min(2, os.cpu_count() or 1)
DEFAULT_CONTEXT = 2048


def resolve_model(model: str | os.PathLike) -> Path:
    """Return the GGUF path for a course alias (``"smollm2"``, ``"gemma3-270m"``) or an existing file."""
    if str(model) in assets.MODELS:
        return assets.model_path(str(model))
    path = Path(model)
    if not path.is_file():
        raise assets.AssetError(
            f"model {str(model)!r} is neither a course model ({', '.join(assets.MODELS)}) "
            "nor an existing GGUF file; check the name or path."
        )
    return path


def load_model(model: str | os.PathLike = "smollm2", *, n_ctx: int = DEFAULT_CONTEXT,
               n_threads: int = DEFAULT_THREADS, seed: int = 0, **llama_kwargs):
    """Load a GGUF into a ``llama_cpp.Llama`` and log how long it took.

    ``model`` is a course alias or a path; extra keyword arguments go to ``llama_cpp.Llama``.
    """
    # Imported here: loading the shared library takes a moment.
    llama_cpp = import_llama_cpp()

    path = resolve_model(model)
    started = time.perf_counter()
    try:
        with REDIRECT_LOCK:
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                  n_threads_batch=n_threads, seed=seed, verbose=False,
                                  **llama_kwargs)
    except ValueError as error:
        # llama-cpp-python reports any unreadable file as "Failed to load model from file".
        raise assets.AssetError(
            f"llama.cpp could not load {path}: it is not a valid GGUF model ({error}). "
            "Check the path, or run `labkit assets fetch --force` for a course model."
        ) from error
    log.info("loaded %s (%.0f MB) in %.1f s", path.name, path.stat().st_size / 1e6,
             time.perf_counter() - started)
    return llm
