"""A small file store for endpoint state, config and rate limits, written atomically.

Everything a client configured (endpoints it created, their config, AI-gateway settings of any
endpoint) lives in one JSON file, so a restart of the stand-in loses nothing. Each change writes a
complete new file next to the old one, flushes it to disk and renames it over the old one. So a crash
or a full disk leaves either the old file or the new one, never a half-written mix.

>>> import tempfile, pathlib
>>> store = EndpointStore(pathlib.Path(tempfile.mkdtemp()) / "workspace.json")
>>> store.put_endpoint({"name": "chat", "task": "llm/v1/chat"})
>>> EndpointStore(store.path).get_endpoint("chat")["task"]
'llm/v1/chat'
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class StoreError(RuntimeError):
    """The store file cannot be read; its message names the file and the fix."""


class EndpointStore:
    """Endpoints by name, plus per-endpoint overrides of built-in (pay-per-token) endpoints.

    Readers get deep copies, so a caller cannot change stored state without ``put_*``.
    One process owns a store file; a lock serialises writers inside that process.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data = self._load()

    # -- reading ---------------------------------------------------------------------------------

    def _load(self) -> dict:
        empty = {"version": FORMAT_VERSION, "endpoints": {}, "overrides": {}}
        if not self.path.exists():
            return empty
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StoreError(
                f"cannot read the endpoint store {self.path}: {error}. Move the file away to start "
                "with no endpoints, or point --store at another file."
            ) from None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise StoreError(
                f"{self.path} is not an endpoint store of format version {FORMAT_VERSION}. "
                "Move the file away or point --store at another file."
            )
        data.setdefault("endpoints", {})
        data.setdefault("overrides", {})
        log.info("loaded %d endpoint(s) from %s", len(data["endpoints"]), self.path)
        return data

    def endpoints(self) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._data["endpoints"].values()]

    def get_endpoint(self, name: str) -> dict | None:
        with self._lock:
            endpoint = self._data["endpoints"].get(name)
            return copy.deepcopy(endpoint) if endpoint is not None else None

    def get_override(self, name: str) -> dict:
        with self._lock:
            return copy.deepcopy(self._data["overrides"].get(name, {}))

    # -- writing ---------------------------------------------------------------------------------

    def put_endpoint(self, endpoint: dict) -> None:
        with self._lock:
            self._data["endpoints"][endpoint["name"]] = copy.deepcopy(endpoint)
            self._write()

    def delete_endpoint(self, name: str) -> bool:
        """Delete an endpoint; return False when none had this name."""
        with self._lock:
            if self._data["endpoints"].pop(name, None) is None:
                return False
            self._data["overrides"].pop(name, None)
            self._write()
            return True

    def put_override(self, name: str, override: dict) -> None:
        with self._lock:
            self._data["overrides"][name] = copy.deepcopy(override)
            self._write()

    def _write(self) -> None:
        text = json.dumps(self._data, indent=2, sort_keys=True)
        write_atomically(self.path, text)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix.

    The temporary file lives in the same folder because ``os.replace`` is atomic only within one
    file system.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

    # Flush the folder entry too, so the rename itself survives a power cut.
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)
