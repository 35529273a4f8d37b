"""Tests of ``labkit serve``: arguments to settings, and a real server process started by the command."""

import httpx
import pytest

from labkit.cli import build_parser, main
from labkit.serve.background import serve_in_subprocess
from labkit.serve.cli import settings_from_args


def parse(*argv):
    return build_parser().parse_args(["serve", *argv])


def test_defaults_serve_both_models_on_loopback(monkeypatch):
    monkeypatch.delenv("LABKIT_API_KEY", raising=False)
    settings = settings_from_args(parse())
    assert settings.host == "127.0.0.1"
    assert settings.models == {"smollm2": "smollm2", "gemma3-270m": "gemma3-270m"}
    assert settings.embedding_models == ["smollm2"]
    assert settings.api_key is None


def test_model_ids_and_sources():
    settings = settings_from_args(parse("--model", "chat=smollm2", "--model", "gemma3-270m"))
    assert settings.models == {"chat": "smollm2", "gemma3-270m": "gemma3-270m"}
    assert settings.embedding_models == []


def test_api_key_from_environment(monkeypatch):
    monkeypatch.setenv("LABKIT_API_KEY", "sk-from-env")
    settings = settings_from_args(parse())
    assert settings.api_key.get_secret_value() == "sk-from-env"


def test_unserved_embedding_model_is_rejected(capsys):
    assert main(["serve", "--model", "gemma3-270m", "--embedding-model", "smollm2"]) == 2
    assert "not among the served models" in capsys.readouterr().out


def test_invalid_number_is_rejected(capsys):
    assert main(["serve", "--n-parallel", "0"]) == 2
    assert "n_parallel" in capsys.readouterr().out


@pytest.mark.slow
def test_command_starts_a_working_server():
    with serve_in_subprocess(models={"smollm2": "smollm2"}, extra_args=["--n-parallel", "2"]) as base_url:
        assert httpx.get(f"{base_url}/health").json()["models"] == ["smollm2"]
        reply = httpx.post(f"{base_url}/v1/completions", json={"model": "smollm2", "prompt": "Hello",
                                                               "max_tokens": 3, "temperature": 0}, timeout=60)
        assert reply.status_code == 200
        assert reply.json()["usage"]["completion_tokens"] == 3
