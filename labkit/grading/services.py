"""Services a lab's notebooks need while they are graded, one private instance per notebook.

Lab 1.2 calls Databricks serving endpoints. Each notebook graded gets its own local stand-in
(:mod:`labkit.databricks`) with its own endpoint store, so endpoints, configurations and rate
limits one submission creates never reach another submission or the reference solution.

>>> with databricks_stand_in() as env:                        # doctest: +SKIP
...     env["DATABRICKS_HOST"]
'http://127.0.0.1:41873'
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def databricks_stand_in() -> Iterator[dict[str, str]]:
    """Run a stand-in on a free 127.0.0.1 port; yield ``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``."""
    from labkit.databricks.backend import EngineBackend
    from labkit.databricks.server import WorkspaceServer
    from labkit.databricks.settings import WorkspaceSettings

    # The stand-in logs every request at INFO; in a grading run that drowns the report.
    quiet = [logging.getLogger(name) for name in ("labkit.databricks", "labkit.serve", "uvicorn")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))

    folder = Path(tempfile.mkdtemp(prefix="labkit-grade-workspace-"))
    settings = WorkspaceSettings(port=0, store_path=folder / "serving-endpoints.json",
                                 deploy_seconds=0.2)
    # The server does not close a backend it was given, so this function closes it (and frees
    # the loaded models).
    backend = EngineBackend()
    try:
        with WorkspaceServer(settings, backend) as server:
            yield {"DATABRICKS_HOST": server.host, "DATABRICKS_TOKEN": server.token}
    finally:
        backend.close()
        shutil.rmtree(folder, ignore_errors=True)
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
