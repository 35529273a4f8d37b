"""A running stand-in on 127.0.0.1 with real local models, and SDK clients pointed at it."""

import time
import warnings

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config

from labkit.databricks.backend import EngineBackend
from labkit.databricks.server import WorkspaceServer
from labkit.databricks.settings import WorkspaceSettings

TOKEN = "dapi-test-main"
OTHER_TOKEN = "dapi-test-other"
OTHER_USER = "other@labkit.local"


@pytest.fixture(scope="session")
def backend():
    """One engine for the whole session: loading the two models once keeps the suite short."""
    shared = EngineBackend(n_parallel=2, n_ctx=1024)
    yield shared
    shared.close()


class Clock:
    """Monotonic time plus an offset a test can move forward, or a frozen time, for rate-limit windows."""

    def __init__(self):
        self.offset = 0.0
        self.frozen: float | None = None

    def __call__(self) -> float:
        if self.frozen is not None:
            return self.frozen
        return time.monotonic() + self.offset

    def freeze(self) -> None:
        """Stop the clock, so that no window expires while a client retries."""
        self.frozen = self()

    def advance(self, seconds: float) -> None:
        """Move a frozen clock forward."""
        self.frozen += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def start_server(tmp_path, backend, clock):
    """Start stand-ins on one store file; every server started is stopped after the test."""
    servers = []

    def start(deploy_seconds: float = 0.2) -> WorkspaceServer:
        settings = WorkspaceSettings(port=0, token=TOKEN, users={OTHER_TOKEN: OTHER_USER},
                                     store_path=tmp_path / "endpoints.json",
                                     deploy_seconds=deploy_seconds)
        server = WorkspaceServer(settings, backend, clock=clock).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server()


def _connect(host: str, token: str = TOKEN, retry_timeout_seconds: int = 5) -> WorkspaceClient:
    """A real SDK client; a short retry timeout keeps 429 and 503 tests from waiting 300 s."""
    return WorkspaceClient(config=Config(host=host, token=token,
                                         retry_timeout_seconds=retry_timeout_seconds))


@pytest.fixture
def connect():
    """The function that makes SDK clients: ``connect(host, token=..., retry_timeout_seconds=...)``."""
    return _connect


@pytest.fixture
def workspace(server) -> WorkspaceClient:
    return _connect(server.host)


@pytest.fixture
def openai_client(workspace):
    """The openai client exactly as Databricks users get it, with retries off to see each error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return workspace.serving_endpoints.get_open_ai_client(max_retries=0)
