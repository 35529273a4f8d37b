"""Run the server in a background thread of this process, on a free 127.0.0.1 port.

Notebooks and tests start a real HTTP server this way and talk to it with any client; leaving
the ``with`` block stops the server and frees the models.

>>> from labkit.serve.background import serve_in_background
>>> with serve_in_background(models={"smollm2": "smollm2"}) as server:      # doctest: +SKIP
...     client = server.openai_client()
...     client.chat.completions.create(model="smollm2", max_tokens=8,
...                                    messages=[{"role": "user", "content": "Hi"}])
>>> server.base_url                                                          # doctest: +SKIP
'http://127.0.0.1:40123'
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import uvicorn

from labkit.serve.app import create_app
from labkit.serve.engine import Engine
from labkit.serve.settings import ServeSettings

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 30.0


@dataclass
class RunningServer:
    """A server started by :func:`serve_in_background`."""

    base_url: str          # http://127.0.0.1:PORT, without /v1
    port: int
    engine: Engine
    settings: ServeSettings

    @property
    def openai_base_url(self) -> str:
        """The base URL the openai client expects (``.../v1``)."""
        return f"{self.base_url}/v1"

    def openai_client(self, **kwargs):
        """Return an ``openai.OpenAI`` client for this server (the API key when one is set)."""
        import openai

        key = self.settings.api_key.get_secret_value() if self.settings.api_key else "not-needed"
        return openai.OpenAI(base_url=self.openai_base_url, api_key=kwargs.pop("api_key", key), **kwargs)

    def async_openai_client(self, **kwargs):
        """Return an ``openai.AsyncOpenAI`` client for this server."""
        import openai

        key = self.settings.api_key.get_secret_value() if self.settings.api_key else "not-needed"
        return openai.AsyncOpenAI(base_url=self.openai_base_url, api_key=kwargs.pop("api_key", key), **kwargs)


@contextlib.contextmanager
def serve_in_background(settings: ServeSettings | None = None, *, engine: Engine | None = None,
                        **overrides) -> Iterator[RunningServer]:
    """Start the server in a thread, yield a :class:`RunningServer`, and stop it on exit.

    ``port`` defaults to 0 here, which binds a free port; pass an ``engine`` to serve models
    that are already loaded (it is then left open on exit).
    """
    if engine is not None:
        settings = engine.settings
    else:
        settings = (settings or ServeSettings(port=0))
        if overrides:
            settings = ServeSettings.model_validate({**settings.model_dump(), **overrides})
    owns_engine = engine is None
    engine = engine or Engine(settings)

    # Bind the socket here and hand it to uvicorn, so the port cannot be taken in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    port = sock.getsockname()[1]

    config = uvicorn.Config(create_app(engine), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"labkit-serve-{port}",
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {settings.host}:{port} did not start within "
                                   f"{STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.02)
        log.info("serving %s on http://%s:%d", ", ".join(engine.model_ids), settings.host, port)
        yield RunningServer(base_url=f"http://{settings.host}:{port}", port=port, engine=engine,
                            settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if owns_engine:
            engine.close()
        log.info("stopped the server on port %d", port)
