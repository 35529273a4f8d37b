"""Real vocabularies against llama.cpp's test vectors (produced with the original Hugging Face tokenizers)."""

from __future__ import annotations

import pytest

from labkit import assets
from labkit.tokenize import LlamaCppVocabulary, Vocabulary, load_vocabulary
from labkit.tokenize.gguf_metadata import read_gguf_metadata
from labkit.tokenize.gguf_vocab import alphabet_to_bytes, gpt2_byte_alphabet

# Byte-level BPE vocabularies whose pre-tokenizer labkit reproduces: labkit's own encoder.
BYTE_LEVEL = ["gpt-2", "llama-bpe", "qwen2", "qwen35", "starcoder", "refact", "command-r", "mpt",
              "falcon", "deepseek-llm", "deepseek-coder"]
# Other tokenizers with vectors: run by llama.cpp's vocabulary-only loader.
LLAMA_CPP = ["llama-spm", "phi-3", "gemma-4", "bert-bge"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BYTE_LEVEL)
def test_byte_level_vectors(name, backend):
    vocab = load_vocabulary(name, backend=backend)
    assert isinstance(vocab, Vocabulary)
    cases = assets.llama_vocab_test_cases(name)
    failures = [(text, expected, vocab.encode(text)) for text, expected in cases if vocab.encode(text) != expected]
    assert failures == [], f"{len(failures)} of {len(cases)} vectors differ"


@pytest.mark.parametrize("name", ["gpt-2", "llama-bpe"])
def test_required_vectors_fast_path(name):
    # The two vocabularies the course depends on, in the default (tiktoken) backend, not marked slow.
    vocab = load_vocabulary(name)
    for text, expected in assets.llama_vocab_test_cases(name):
        assert vocab.encode(text) == expected, repr(text)


@pytest.mark.slow
@pytest.mark.parametrize("name", LLAMA_CPP)
def test_llama_cpp_vectors(name):
    vocab = load_vocabulary(name)
    assert isinstance(vocab, LlamaCppVocabulary)
    for text, expected in assets.llama_vocab_test_cases(name):
        assert vocab.encode(text) == expected, repr(text)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["aquila", "gpt-neox", "smollm2"])
def test_byte_level_without_vectors_equals_llama_cpp(name):
    # No .out file exists for these; llama.cpp's own tokenizer is the independent reference.
    path = assets.model_path(name) if name == "smollm2" else assets.llama_vocab_path(name)
    vocab = load_vocabulary(name)
    reference = LlamaCppVocabulary(path, name=name)
    texts = [text for text, _ in assets.llama_vocab_test_cases("llama-bpe")]
    texts += [text for text, _ in assets.llama_vocab_test_cases("qwen35")]
    for text in texts:
        assert vocab.encode(text) == reference.encode(text), repr(text)


def _spell_sentencepiece(tokens: list[bytes], ids: list[int]) -> bytes:
    """Concatenate SentencePiece pieces from the GGUF table: "▁" is a space, <0xNN> is one byte."""
    out = bytearray()
    for token_id in ids:
        piece = tokens[token_id].decode("utf-8")
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            out.append(int(piece[3:5], 16))
        else:
            out += piece.replace("\u2581", " ").encode("utf-8")
    return bytes(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma3-270m", "llama-spm"])
def test_sentencepiece_pieces_spell_the_text(name):
    # Gemma 3 has no vectors of its own. Its ids must at least spell each input exactly when read
    # from the GGUF token table directly (not through llama.cpp), and decode back to the input.
    vocab = load_vocabulary(name)
    path = assets.model_path(name) if name == "gemma3-270m" else assets.llama_vocab_path(name)
    tokens = read_gguf_metadata(path, raw_strings=True)["tokenizer.ggml.tokens"]
    for text, _ in assets.llama_vocab_test_cases("llama-spm"):
        ids = vocab.encode(text)
        spelled = _spell_sentencepiece(tokens, ids)
        prefix = b" " if vocab.add_space_prefix and text else b""
        assert spelled == prefix + text.encode("utf-8"), repr(text)
        assert vocab.decode(ids) == text, repr(text)


def test_gemma_known_ids():
    # Read off the GGUF token table: "Hello" is token 9259 and "▁world" is 1902 in Gemma 3.
    vocab = load_vocabulary("gemma3-270m")
    assert vocab.encode("Hello world") == [9259, 1902]
    assert vocab.n_vocab == 262144


def test_gpt2_byte_alphabet_is_a_bijection():
    alphabet = gpt2_byte_alphabet()
    assert sorted(alphabet) == list(range(256))
    assert len(set(alphabet.values())) == 256
    assert alphabet_to_bytes("".join(alphabet[b] for b in range(256))) == bytes(range(256))
    assert alphabet_to_bytes("\u4e00") is None


def test_gguf_roles_and_specials():
    llama3 = load_vocabulary("llama-bpe")
    assert llama3.bos_id == 128000
    assert llama3.eos_id == 128001
    assert llama3.special_tokens["<|begin_of_text|>"] == 128000
    gpt2 = load_vocabulary("gpt-2")
    assert gpt2.n_vocab == 50257
    assert gpt2.eos_id == 50256


@pytest.mark.slow
def test_metadata_reader_agrees_with_gguf_py():
    # gguf-py is the independent reader; the small gpt-2 vocabulary keeps it quick.
    import gguf

    path = assets.llama_vocab_path("gpt-2")
    ours = read_gguf_metadata(path)
    reader = gguf.GGUFReader(path)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id"):
        assert ours[key] == reader.fields[key].contents()
    assert ours["tokenizer.ggml.tokens"] == reader.fields["tokenizer.ggml.tokens"].contents()
    assert ours["tokenizer.ggml.merges"][:100] == reader.fields["tokenizer.ggml.merges"].contents()[:100]
