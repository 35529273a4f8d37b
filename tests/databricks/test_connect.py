"""open_workspace: the stand-in by default, the workspace the environment names otherwise."""

import socket
import time

import pytest

from labkit.databricks.connect import open_workspace, workspace_from_environment
from labkit.databricks.settings import WorkspaceSettings

pytestmark = pytest.mark.slow


@pytest.fixture
def no_workspace_environment(monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)


def test_starts_stand_in_without_environment(no_workspace_environment, tmp_path, backend):
    settings = WorkspaceSettings(port=0, store_path=tmp_path / "s.json")
    with open_workspace(settings=settings, backend=backend) as workspace:
        assert workspace.is_stand_in
        assert workspace.host.startswith("http://127.0.0.1:")
        assert workspace.client.config.retry_timeout_seconds == 15
        assert workspace.client.serving_endpoints.get("databricks-gte-large-en").task == "llm/v1/embeddings"
    assert workspace.server is None


def test_uses_workspace_from_environment(monkeypatch, server):
    monkeypatch.setenv("DATABRICKS_HOST", server.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", server.token)
    with open_workspace(retry_timeout_seconds=3) as workspace:
        assert not workspace.is_stand_in
        assert workspace.host == server.host
        assert [e.name for e in workspace.client.serving_endpoints.list()]


def test_unreachable_host_fails_fast(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-x")
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=f"no server responds at http://127.0.0.1:{port}"):
        open_workspace()
    assert time.monotonic() - started < 10


def test_host_without_scheme_gets_https(monkeypatch):
    monkeypatch.setenv("DATABRICKS_HOST", "dbc-123.cloud.databricks.com/")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-x")
    assert workspace_from_environment() == ("https://dbc-123.cloud.databricks.com", "dapi-x")


def test_server_makes_its_own_backend(tmp_path):
    from labkit.databricks.backend import EngineBackend
    from labkit.databricks.server import WorkspaceServer

    server = WorkspaceServer(WorkspaceSettings(port=0, store_path=tmp_path / "s.json"))
    # The engine loads lazily, so this checks the wiring without loading a model.
    assert isinstance(server.backend, EngineBackend)
    assert server.app.state.service.prepare == server.backend.prepare
