"""The endpoint store survives restarts and never leaves a half-written file."""

import json
import os

import pytest

from labkit.databricks.store import EndpointStore, StoreError, write_atomically


def test_round_trip_across_instances(tmp_path):
    path = tmp_path / "endpoints.json"
    store = EndpointStore(path)
    store.put_endpoint({"name": "chat", "task": "llm/v1/chat"})
    store.put_override("databricks-gte-large-en", {"ai_gateway": {"rate_limits": []}})

    reopened = EndpointStore(path)
    assert reopened.get_endpoint("chat") == {"name": "chat", "task": "llm/v1/chat"}
    assert reopened.get_override("databricks-gte-large-en") == {"ai_gateway": {"rate_limits": []}}


def test_readers_get_copies(tmp_path):
    store = EndpointStore(tmp_path / "endpoints.json")
    store.put_endpoint({"name": "chat", "state": {"ready": "READY"}})
    store.get_endpoint("chat")["state"]["ready"] = "NOT_READY"
    assert store.get_endpoint("chat")["state"]["ready"] == "READY"


def test_delete_reports_missing(tmp_path):
    store = EndpointStore(tmp_path / "endpoints.json")
    store.put_endpoint({"name": "chat"})
    assert store.delete_endpoint("chat") is True
    assert store.delete_endpoint("chat") is False
    assert EndpointStore(store.path).endpoints() == []


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "endpoints.json"
    store = EndpointStore(path)
    store.put_endpoint({"name": "kept"})
    before = path.read_bytes()

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        store.put_endpoint({"name": "lost"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["endpoints.json"]


def test_write_atomically_replaces_content(tmp_path):
    path = tmp_path / "nested" / "file.json"
    write_atomically(path, "one")
    write_atomically(path, "two")
    assert path.read_text() == "two"
    assert len(list(path.parent.iterdir())) == 1


def test_corrupt_file_raises_store_error(tmp_path):
    path = tmp_path / "endpoints.json"
    path.write_text('{"version": 1, "endpoints": {')
    with pytest.raises(StoreError, match="Move the file away"):
        EndpointStore(path)
    assert path.read_text() == '{"version": 1, "endpoints": {'


def test_other_format_version_rejected(tmp_path):
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(StoreError, match="format version 1"):
        EndpointStore(path)
