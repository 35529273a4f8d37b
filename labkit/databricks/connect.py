"""Connect a notebook to a workspace: the real one if the environment names it, else the stand-in.

With ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN`` set, :func:`open_workspace` connects to that
workspace and starts nothing. Otherwise it starts the local stand-in on a free 127.0.0.1 port.
Either way it checks that the host responds before it creates the ``WorkspaceClient``, and it gives
the client a short ``retry_timeout_seconds``. The SDK's default is 300 s: with no server listening,
creating a client would stall that long while it probes the host, and every 429 or 503 response would
be retried that long too.

>>> with open_workspace() as workspace:                            # doctest: +SKIP
...     print(workspace.is_stand_in, [e.name for e in workspace.client.serving_endpoints.list()][:1])
True ['databricks-meta-llama-3-3-70b-instruct']
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config

from labkit.databricks.backend import EngineBackend
from labkit.databricks.server import WorkspaceServer, probe
from labkit.databricks.settings import WorkspaceSettings

log = logging.getLogger(__name__)

DEFAULT_RETRY_TIMEOUT_SECONDS = 15


@dataclass
class Workspace:
    """A connected ``WorkspaceClient`` and, for the stand-in, the server to stop afterwards."""

    host: str
    token: str
    client: WorkspaceClient
    server: WorkspaceServer | None = None

    @property
    def is_stand_in(self) -> bool:
        return self.server is not None

    def close(self) -> None:
        """Stop the stand-in if this call started one; a real workspace is left alone."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def workspace_from_environment() -> tuple[str, str] | None:
    """Return (host, token) from ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``, or None if either is unset."""
    host, token = os.environ.get("DATABRICKS_HOST"), os.environ.get("DATABRICKS_TOKEN")
    if not host or not token:
        return None
    # The SDK assumes https when the host has no scheme, so the probe must use https too.
    if "://" not in host:
        host = "https://" + host
    return host.rstrip("/"), token


def open_workspace(*, retry_timeout_seconds: int = DEFAULT_RETRY_TIMEOUT_SECONDS,
                   settings: WorkspaceSettings | None = None,
                   backend: EngineBackend | None = None) -> Workspace:
    """Return a connected :class:`Workspace`, starting the stand-in when no workspace is configured.

    Raises ``ConnectionError`` naming the host when nothing responds there.
    """
    server = None
    configured = workspace_from_environment()
    if configured is not None:
        host, token = configured
        log.info("using the workspace at %s (from DATABRICKS_HOST)", host)
    else:
        server = WorkspaceServer(settings, backend).start()
        host, token = server.host, server.token

    if not probe(host):
        if server is not None:
            server.stop()
        raise ConnectionError(
            f"no server responds at {host}. Check DATABRICKS_HOST, or unset DATABRICKS_HOST and "
            "DATABRICKS_TOKEN to use the local stand-in.")

    config = Config(host=host, token=token, retry_timeout_seconds=retry_timeout_seconds)
    return Workspace(host=host, token=token, client=WorkspaceClient(config=config), server=server)
