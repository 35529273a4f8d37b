"""Run the stand-in inside this process, on a background thread, for notebooks and tests.

>>> with WorkspaceServer() as server:                          # doctest: +SKIP
...     print(server.host, probe(server.host))
http://127.0.0.1:38517 True

By default the server binds 127.0.0.1 and a free port. ``stop()`` (or leaving the
``with`` block) shuts it down and waits for the thread to end.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

import httpx
import uvicorn

from labkit.databricks.app import create_app
from labkit.databricks.backend import EngineBackend
from labkit.databricks.settings import WorkspaceSettings

log = logging.getLogger(__name__)


def probe(host: str, timeout: float = 2.0) -> bool:
    """Return True if an HTTP server responds at ``host`` within ``timeout`` seconds.

    Checking first matters: a ``WorkspaceClient`` pointed at a host where nothing listens retries
    the connection for its whole ``retry_timeout_seconds`` (300 s by default) before it fails.
    """
    try:
        httpx.get(f"{host.rstrip('/')}/.well-known/databricks-config", timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


class WorkspaceServer:
    """The stand-in on a background thread; ``host`` and ``token`` are what clients need."""

    def __init__(self, settings: WorkspaceSettings | None = None, backend: EngineBackend | None = None, *,
                 port: int = 0, clock: Callable[[], float] | None = None):
        # Without settings, a free port: notebooks and tests must not collide with `labkit workspace`.
        self.settings = settings if settings is not None else WorkspaceSettings(port=port)
        # A backend the server made is its own to close; a shared one stays loaded for others.
        self._owns_backend = backend is None
        self.backend = backend if backend is not None else EngineBackend()
        self.app = create_app(self.settings, self.backend, clock=clock)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def host(self) -> str:
        if self.port is None:
            raise RuntimeError("the stand-in is not running; call start() first")
        return f"http://{self.settings.host}:{self.port}"

    @property
    def token(self) -> str:
        return self.settings.token

    def start(self, timeout: float = 30.0) -> "WorkspaceServer":
        """Bind the port, start serving and return once the server accepts requests."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        self.port = sock.getsockname()[1]

        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"workspace-stand-in-{self.port}", daemon=True)
        self._thread.start()

        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the stand-in did not start on {self.settings.host}:{self.port} "
                                   f"within {timeout:.0f} s")
            time.sleep(0.02)
        log.info("workspace stand-in serving at %s", self.host)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down and wait for its thread; calling it twice is harmless."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the stand-in thread did not end within %.0f s", timeout)
        self._server = self._thread = None
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> "WorkspaceServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
