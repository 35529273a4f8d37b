"""labkit workspace rejects bad start-up arguments with one line and exit code 2, before serving."""

import pytest

from labkit.cli import main


@pytest.mark.parametrize("arguments, expected", [
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--deploy-seconds", "nan"], "--deploy-seconds must be a number >= 0"),
    (["--deploy-seconds", "-1"], "--deploy-seconds must be a number >= 0"),
    (["--store", "/proc/labkit-store.json"], "cannot keep endpoints in /proc/labkit-store.json"),
])
def test_bad_argument_rejected(capsys, arguments, expected):
    assert main(["workspace", *arguments]) == 2
    assert expected in capsys.readouterr().out
