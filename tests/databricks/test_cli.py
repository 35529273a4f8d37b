"""`labkit workspace` as a process: it starts, serves the SDK with the token given, and stops."""

import os
import socket
import subprocess
import sys
import time

import pytest

from labkit.databricks.server import probe

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_workspace_command_serves_sdk(tmp_path, connect):
    port = free_port()
    environment = {**os.environ, "LABKIT_WORKSPACE_TOKEN": "dapi-cli-test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "labkit", "workspace", "--port", str(port), "--store", str(tmp_path / "s.json")],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    host = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not probe(host, timeout=1):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "labkit workspace did not start within 60 s"
            time.sleep(0.2)
        names = [e.name for e in connect(host, token="dapi-cli-test").serving_endpoints.list()]
        assert "databricks-meta-llama-3-3-70b-instruct" in names
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"export DATABRICKS_HOST=http://127.0.0.1:{port}" in output
    assert "export DATABRICKS_TOKEN=dapi-cli-test" in output


def test_corrupt_store_exits_with_message(tmp_path):
    store = tmp_path / "s.json"
    store.write_text("{broken")
    result = subprocess.run([sys.executable, "-m", "labkit", "workspace", "--port", str(free_port()),
                             "--store", str(store)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot read the endpoint store" in result.stdout
