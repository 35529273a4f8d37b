"""Tokenization: byte-level BPE training and encoding, special tokens, batching, real vocabularies.

Count and inspect tokens of a real model's vocabulary by name (or a GGUF path)::

    >>> from labkit.tokenize import load_vocabulary
    >>> vocab = load_vocabulary("llama-bpe")            # Llama 3, from llama.cpp's GGUF   # doctest: +SKIP
    >>> ids = vocab.encode("Hello world, <s> stays text.")                              # doctest: +SKIP
    >>> ids                                                                              # doctest: +SKIP
    [9906, 1917, 11, 366, 82, 29, 27656, 1495, 13]
    >>> vocab.decode(ids), vocab.n_vocab, vocab.name                                     # doctest: +SKIP
    ('Hello world, <s> stays text.', 128256, 'llama-bpe')

``load_vocabulary(name_or_path)`` accepts these names and files:

* ``"gpt-2"``, ``"llama-bpe"`` (Llama 3), ``"qwen2"``, ``"phi-3"``;
* ``"llama-spm"`` (Llama 2 and Mixtral-style SentencePiece, 32 000 tokens);
* ``"cl100k"`` (GPT-4, GPT-3.5, DBRX);
* ``"gemma3-270m"`` (Gemma 3, read from the model's GGUF) and ``"smollm2"``;
* every other llama.cpp vocabulary name (``labkit.assets.llama_vocab_names()``);
* a GGUF path, or a vocabulary saved with ``save_vocabulary`` (``.json``).

Every returned object has:

* ``encode(text) -> list[int]``: ordinary text, no BOS added, special-token strings such as
  ``"<s>"`` encoded as plain text (``allowed_special=`` / ``disallowed_special=`` change that);
* ``decode(ids) -> str``: invalid UTF-8 becomes U+FFFD; ids out of range raise TokenizerError;
* ``n_vocab`` (the number of ids) and ``name``.

Vocabularies are cached, so calling ``load_vocabulary`` again is free. Byte-level BPE vocabularies
(GPT-2, Llama 3, Qwen2, cl100k, StarCoder, ...) run on labkit's own encoder with a tiktoken fast
path; SentencePiece ones (Llama 2, Phi-3, Gemma) run on llama.cpp's vocabulary-only loader.

Modules: :mod:`.pretokenize` (split patterns), :mod:`.bpe` (readable encoder), :mod:`.fast`
(tiktoken encoder), :mod:`.train` (training), :mod:`.specials` (special tokens), :mod:`.vocabulary`,
:mod:`.gguf_vocab` and :mod:`.llama_cpp_vocab` (real vocabularies), :mod:`.batch` (model input),
:mod:`.serialization` (save/load), :mod:`.incremental` (streaming decoding).
"""

from labkit.tokenize.batch import Batch, encode_batch
from labkit.tokenize.errors import SpecialTokenError, TokenizerError
from labkit.tokenize.incremental import IncrementalDecoder
from labkit.tokenize.llama_cpp_vocab import LlamaCppVocabulary
from labkit.tokenize.registry import load_vocabulary, vocabulary_names
from labkit.tokenize.serialization import load_vocabulary_file, save_vocabulary
from labkit.tokenize.specials import SpecialTokenNames
from labkit.tokenize.train import train_bpe
from labkit.tokenize.vocabulary import Vocabulary

__all__ = [
    "Batch",
    "IncrementalDecoder",
    "LlamaCppVocabulary",
    "SpecialTokenError",
    "SpecialTokenNames",
    "TokenizerError",
    "Vocabulary",
    "encode_batch",
    "load_vocabulary",
    "load_vocabulary_file",
    "save_vocabulary",
    "train_bpe",
    "vocabulary_names",
]
