"""The local models behind the stand-in: ``labkit.serve``'s engine, loaded on first use.

The stand-in serves through the same :class:`labkit.serve.engine.Engine` as ``labkit serve``, so
replies, defaults, batching and usage are the engine's. Loading both course models takes a few
seconds, so the engine starts when the first endpoint is deployed or queried, not when the
stand-in starts. Engine errors (prompt too long, bad sampling value, queue full) come back as
Databricks errors with the matching status.

>>> backend = EngineBackend(n_parallel=2)                                  # doctest: +SKIP
>>> reply = asyncio.run(backend.chat("smollm2", [{"role": "user", "content": "Hi"}],
...                                  {"max_tokens": 4}))                   # doctest: +SKIP
>>> reply.usage                                                            # doctest: +SKIP
Usage(prompt_tokens=31, completion_tokens=4, total_tokens=35)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading

from labkit.databricks import errors
from labkit.databricks.foundation import EMBEDDING_MODEL, LOCAL_MODELS

log = logging.getLogger(__name__)


def _databricks_error(error) -> errors.DatabricksError:
    """Translate a ``labkit.serve`` error into the Databricks error with the same meaning."""
    status = error.status_code
    if status == 429:
        return errors.request_limit_exceeded(f"The local model is busy: {error.message}",
                                             retry_after_seconds=getattr(error, "retry_after", 1))
    if status == 503:
        return errors.temporarily_unavailable(error.message)
    if status >= 500:
        return errors.internal_error(error.message)
    return errors.invalid_parameter(error.message)


def _translating_errors(method):
    """Make a backend coroutine raise DatabricksError in place of labkit.serve's ServeError."""

    @functools.wraps(method)
    async def run(self, *args, **kwargs):
        from labkit.serve.errors import ServeError

        try:
            return await method(self, *args, **kwargs)
        except ServeError as error:
            raise _databricks_error(error) from None

    return run


class EngineBackend:
    """Run chat, completions and embeddings on the course models through one shared Engine.

    ``settings`` go to :class:`labkit.serve.settings.ServeSettings` (for example ``n_parallel=2``
    and ``n_ctx=1024`` to save memory in tests). Safe to share between several stand-in servers
    in one process; :meth:`close` frees the models.
    """

    def __init__(self, **settings):
        self._settings = settings
        self._engine = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._engine is None:
                from labkit.serve.engine import Engine

                log.info("loading the local models %s", ", ".join(LOCAL_MODELS))
                self._engine = Engine(models={alias: alias for alias in LOCAL_MODELS},
                                      embedding_models=[EMBEDDING_MODEL], **self._settings)
            return self._engine

    async def engine(self):
        """Return the engine, loading it in a worker thread the first time."""
        if self._engine is not None:
            return self._engine
        return await asyncio.to_thread(self._load)

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    async def prepare(self, model: str) -> None:
        """Load the engine and check that it serves ``model``; deployment calls this."""
        engine = await self.engine()
        engine.model_info(model)

    def model_id(self, model: str) -> str:
        """Return the GGUF file name responses carry in ``model``, e.g. ``SmolLM2-135M-Instruct.Q4_1``."""
        if self._engine is None:
            return model
        return self._engine.model_info(model).path.stem

    @_translating_errors
    async def chat(self, model: str, messages: list[dict], params: dict):
        return await (await self.engine()).chat(model, messages, **params)

    @_translating_errors
    async def complete(self, model: str, prompts: list[str], params: dict):
        return await (await self.engine()).complete(model, prompts, **params)

    @_translating_errors
    async def stream_chat(self, model: str, messages: list[dict], params: dict):
        return await (await self.engine()).stream_chat(model, messages, **params)

    @_translating_errors
    async def stream_complete(self, model: str, prompts: list[str], params: dict):
        return await (await self.engine()).stream_complete(model, prompts, **params)

    @_translating_errors
    async def embed(self, model: str, texts: list[str]):
        return await (await self.engine()).embed(model, texts)
