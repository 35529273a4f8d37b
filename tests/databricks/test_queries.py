"""Chat, completions and embeddings through the real SDK and openai clients, served by local models."""

import datetime
import math

import httpx
import pytest
from databricks.sdk.service.serving import (ChatMessage, ChatMessageRole, EndpointCoreConfigInput,
                                            Route, ServedEntityInput, TrafficConfig)

from labkit import assets

pytestmark = pytest.mark.slow

LLAMA = "databricks-meta-llama-3-3-70b-instruct"
TIMEOUT = datetime.timedelta(seconds=60)


@pytest.fixture(scope="module")
def llama_cpp_tokenizer():
    """llama.cpp's tokenizer over a model file: the independent count of what the model read."""
    from llama_cpp import Llama

    loaded = {}

    def tokenize(alias, text, *, add_bos, special):
        if alias not in loaded:
            loaded[alias] = Llama(model_path=str(assets.model_path(alias)), vocab_only=True, verbose=False)
        return loaded[alias].tokenize(text.encode(), add_bos=add_bos, special=special)

    yield tokenize
    for vocab in loaded.values():
        vocab.close()


@pytest.fixture
def gemma_endpoint(workspace):
    """A completions endpoint served by Gemma 3 270M, created and deployed through the SDK."""
    config = EndpointCoreConfigInput(name="gemma", served_entities=[
        ServedEntityInput(entity_name="gemma3-270m", entity_version="1")])
    workspace.serving_endpoints.create("gemma", config=config).result(timeout=TIMEOUT)
    return "gemma"


def test_chat_usage_is_what_smollm2_read(workspace, llama_cpp_tokenizer):
    response = workspace.serving_endpoints.query(
        LLAMA, messages=[ChatMessage(role=ChatMessageRole.USER, content="Hi")], max_tokens=4, temperature=0)

    # SmolLM2's own template adds its default system prompt when the request has none.
    prompt = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
              "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    expected = llama_cpp_tokenizer("smollm2", prompt, add_bos=False, special=True)
    assert response.usage.prompt_tokens == len(expected)
    assert 1 <= response.usage.completion_tokens <= 4
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.choices[0].message.content
    assert response.served_model_name == "smollm2"
    assert response.model == "SmolLM2-135M-Instruct.Q4_1"
    assert response.object.value == "chat.completion"


def test_sdk_drops_finish_reason(workspace, server):
    # The SDK reads "finishReason", so finish_reason is None through query() ...
    response = workspace.serving_endpoints.query(
        LLAMA, messages=[ChatMessage(role=ChatMessageRole.USER, content="Count to ten.")], max_tokens=2)
    assert response.choices[0].finish_reason is None
    # ... though the server sends it, as raw HTTP shows.
    raw = httpx.post(f"{server.host}/serving-endpoints/{LLAMA}/invocations",
                     headers={"Authorization": "Bearer dapi-test-main"}, timeout=60,
                     json={"messages": [{"role": "user", "content": "Count to ten."}], "max_tokens": 2})
    assert raw.json()["choices"][0]["finish_reason"] == "length"
    assert raw.json()["usage"]["completion_tokens"] == 2
    assert raw.headers["served-model-name"] == "smollm2"


def test_completions_on_created_endpoint(workspace, gemma_endpoint, llama_cpp_tokenizer):
    prompt = "The capital of France is"
    response = workspace.serving_endpoints.query(gemma_endpoint, prompt=prompt, max_tokens=3, temperature=0)
    expected = llama_cpp_tokenizer("gemma3-270m", prompt, add_bos=True, special=False)
    assert response.usage.prompt_tokens == len(expected)
    assert response.usage.completion_tokens == 3
    assert response.object.value == "text_completion"
    assert response.served_model_name == "gemma3-270m-1"
    assert response.choices[0].text


def test_embeddings_through_sdk(workspace, llama_cpp_tokenizer):
    response = workspace.serving_endpoints.query("databricks-gte-large-en", input=["a cat", "a dog"])
    assert [item.index for item in response.data] == [0, 1]
    vectors = [item.embedding for item in response.data]
    assert len(vectors[0]) == 576          # SmolLM2-135M's hidden size, not GTE Large's 1024
    assert math.isclose(math.hypot(*vectors[0]), 1.0, rel_tol=1e-4)
    assert vectors[0] != vectors[1]
    expected = sum(len(llama_cpp_tokenizer("smollm2", t, add_bos=True, special=False)) for t in ["a cat", "a dog"])
    assert response.usage.prompt_tokens == expected
    assert response.usage.completion_tokens is None


def test_openai_chat_and_completions(openai_client, gemma_endpoint):
    chat = openai_client.chat.completions.create(
        model=LLAMA, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Name a colour."}],
        max_tokens=5, temperature=0, seed=3)
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.choices[0].message.content
    assert chat.usage.completion_tokens <= 5

    completion = openai_client.completions.create(model=gemma_endpoint, prompt=["One, two,", "A, B,"],
                                                  max_tokens=2, temperature=0)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.usage.completion_tokens == 4


def test_openai_n_choices(openai_client):
    chat = openai_client.chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "Say something."}], max_tokens=3, n=2, seed=1)
    assert [c.index for c in chat.choices] == [0, 1]


def test_openai_embeddings_base64_matches_float(openai_client):
    # openai's client requests base64 by default and decodes it itself.
    default = openai_client.embeddings.create(model="databricks-bge-large-en", input="hello world")
    floats = openai_client.embeddings.create(model="databricks-bge-large-en", input="hello world",
                                             encoding_format="float")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert default.usage.prompt_tokens == floats.usage.prompt_tokens


def test_openai_streams_chat(openai_client):
    chunks = list(openai_client.chat.completions.create(
        model=LLAMA, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[0].choices[0].delta.role == "assistant"
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished in (["stop"], ["length"])
    assert chunks[-1].usage.completion_tokens <= 6


def test_openai_streams_completions(openai_client, gemma_endpoint):
    chunks = list(openai_client.completions.create(model=gemma_endpoint, prompt="Once upon a time",
                                                   max_tokens=4, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].usage.completion_tokens == 4


def test_traffic_goes_to_weighted_entity(workspace):
    config = EndpointCoreConfigInput(
        name="split",
        served_entities=[ServedEntityInput(entity_name="smollm2", name="blue"),
                         ServedEntityInput(entity_name="smollm2", name="green")],
        traffic_config=TrafficConfig(routes=[Route(served_entity_name="blue", traffic_percentage=0),
                                             Route(served_entity_name="green", traffic_percentage=100)]))
    workspace.serving_endpoints.create("split", config=config).result(timeout=TIMEOUT)
    for _ in range(3):
        response = workspace.serving_endpoints.query(
            "split", messages=[ChatMessage(role=ChatMessageRole.USER, content="Hi")], max_tokens=1)
        assert response.served_model_name == "green"
