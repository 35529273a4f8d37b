"""Run the server in a background thread of this process, on a free 127.0.0.1 port.

Notebooks and tests start a real HTTP server this way and talk to it with any client. Leaving
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
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import httpx
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

    ``port`` defaults to 0 here, which binds a free port. Pass an ``engine`` to serve models that
    are already loaded; that engine stays open on exit.
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


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free right now (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server_process(command: list[str], base_url: str, *, ready_path: str = "/health",
                   timeout: float = STARTUP_TIMEOUT * 4) -> Iterator[subprocess.Popen]:
    """Run a server command in its own process group until ``base_url + ready_path`` returns 200.

    The process and its children are stopped on exit. Its output goes to a temporary log file
    whose tail is shown when it fails to start.
    """
    log_file = open(_temporary_log(), "w+")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with status {process.returncode} before it was "
                                   f"ready:\n{_tail(log_file)}")
            try:
                if httpx.get(base_url + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} was not ready within {timeout:.0f} s:\n{_tail(log_file)}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log_file.close()
        os.unlink(log_file.name)


def _temporary_log() -> str:
    import tempfile

    handle, path = tempfile.mkstemp(prefix="labkit-server-", suffix=".log")
    os.close(handle)
    return path


def _tail(log_file, lines: int = 20) -> str:
    log_file.flush()
    log_file.seek(0)
    return "".join(log_file.readlines()[-lines:])


@contextlib.contextmanager
def serve_in_subprocess(*, port: int | None = None, models: dict[str, str] | None = None,
                        extra_args: list[str] | None = None) -> Iterator[str]:
    """Run ``labkit serve`` in a separate process on 127.0.0.1 and yield its base URL.

    In a separate process the client's Python code does not compete with the server for the GIL,
    which matters when measuring throughput.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "labkit", "serve", "--host", "127.0.0.1", "--port", str(port)]
    for model_id, source in (models or {}).items():
        command += ["--model", f"{model_id}={source}"]
    command += extra_args or []
    base_url = f"http://127.0.0.1:{port}"
    with server_process(command, base_url):
        yield base_url
