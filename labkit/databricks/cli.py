"""``labkit workspace``: run the local Databricks serving-endpoints stand-in in the foreground.

    labkit workspace                      # 127.0.0.1:8070, a new token printed at start
    LABKIT_WORKSPACE_TOKEN=dapi123 labkit workspace --port 8071 --store /tmp/endpoints.json

Clients then use ``DATABRICKS_HOST=http://127.0.0.1:8070`` and ``DATABRICKS_TOKEN=<token>``.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from pathlib import Path

from labkit.databricks.settings import (DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENVIRONMENT_VARIABLE,
                                        WorkspaceSettings, default_store_path)

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "workspace", help="run a local stand-in of the Databricks serving-endpoints API",
        description="Serve the Databricks serving-endpoints REST API on this machine for "
                    "databricks-sdk and openai clients; the course's local models generate the replies.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to bind (default {DEFAULT_HOST}; other addresses expose the "
                             "server to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--store", type=Path, default=None,
                        help=f"JSON file that keeps endpoints across restarts (default {default_store_path()})")
    parser.add_argument("--deploy-seconds", type=float, default=1.0,
                        help="minimum time in seconds a config update stays IN_PROGRESS (default 1)")
    parser.set_defaults(handler=run)


def _store_folder_problem(store_path: Path) -> str | None:
    """Return why the store file's folder cannot take the store's atomic writes, or None."""
    try:
        store_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=store_path.parent, prefix=".labkit-write-check-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from labkit.databricks.app import create_app
    from labkit.databricks.backend import EngineBackend
    from labkit.databricks.store import StoreError

    if not math.isfinite(args.deploy_seconds) or args.deploy_seconds < 0:
        print(f"labkit workspace: --deploy-seconds must be a number >= 0, not {args.deploy_seconds}")
        return 2
    if not 0 <= args.port <= 65535:
        print(f"labkit workspace: --port must be between 0 and 65535, not {args.port}")
        return 2
    settings = WorkspaceSettings(host=args.host, port=args.port,
                                 store_path=args.store or default_store_path(),
                                 deploy_seconds=args.deploy_seconds)
    problem = _store_folder_problem(Path(settings.store_path))
    if problem:
        print(f"labkit workspace: cannot keep endpoints in {settings.store_path}: {problem}; "
              "choose another file with --store")
        return 2
    try:
        app = create_app(settings, EngineBackend())
    except StoreError as error:
        print(f"labkit workspace: {error}")
        return 2

    print(f"Databricks workspace stand-in on http://{settings.host}:{settings.port}")
    print(f"  export DATABRICKS_HOST=http://{settings.host}:{settings.port}")
    print(f"  export DATABRICKS_TOKEN={settings.token}"
          f"   (set {TOKEN_ENVIRONMENT_VARIABLE} to choose the token)")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0
