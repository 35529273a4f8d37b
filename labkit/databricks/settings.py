"""The stand-in's settings in one object, printed (without secrets) when it starts.

>>> settings = WorkspaceSettings(token="dapi-example", store_path=Path("/tmp/w.json"))
>>> settings.describe()
'127.0.0.1:8070, store /tmp/w.json, 1 token(s), deploy delay 1.0 s, workspace id 1234567890123456'
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from labkit import assets

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8070
DEFAULT_USER = "student@labkit.local"
TOKEN_ENVIRONMENT_VARIABLE = "LABKIT_WORKSPACE_TOKEN"


def new_token() -> str:
    """Return a fresh random token shaped like a Databricks personal access token (``dapi`` + hex)."""
    return "dapi" + secrets.token_hex(16)


def default_store_path() -> Path:
    return assets.cache_dir() / "workspace" / "serving-endpoints.json"


@dataclass
class WorkspaceSettings:
    """Everything that configures one stand-in server.

    ``token`` is the personal access token clients must send. ``users`` maps further tokens to user
    names, because per-user rate limits count each user apart. ``deploy_seconds`` is the minimum
    time a config update stays IN_PROGRESS.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str = field(default_factory=lambda: os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or new_token())
    user: str = DEFAULT_USER
    users: dict[str, str] = field(default_factory=dict)
    store_path: Path = field(default_factory=default_store_path)
    deploy_seconds: float = 1.0
    workspace_id: str = "1234567890123456"

    def principals(self) -> dict[str, str]:
        """Return every accepted token with the user name it authenticates."""
        return {self.token: self.user, **self.users}

    @property
    def usage_log_path(self) -> Path:
        return self.store_path.with_name(self.store_path.stem + ".usage.jsonl")

    def describe(self) -> str:
        return (f"{self.host}:{self.port}, store {self.store_path}, {len(self.principals())} token(s), "
                f"deploy delay {self.deploy_seconds} s, workspace id {self.workspace_id}")
