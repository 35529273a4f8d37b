"""Tests of the OpenAI-compatible server with the official openai client and raw HTTP, on the real models."""

import json
import logging

import httpx
import jinja2.sandbox
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow

HI = [{"role": "user", "content": "Say hello in one short sentence."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]
JAPANESE = [{"role": "user", "content": "Write 'thank you' in Japanese."}]
SPECIAL_TEXTS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<end_of_turn>", "<start_of_turn>", "<eos>")


def sse_data(response: httpx.Response) -> list[str]:
    """Return the data field of every server-sent event, in order."""
    return [line[len("data:"):].strip() for line in response.iter_lines() if line.startswith("data:")]


def stream_chat_raw(server, body: dict) -> tuple[httpx.Response, list]:
    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json={**body, "stream": True},
                      timeout=120) as response:
        data = sse_data(response)
    return response, data


def _is_valid_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- models, health, metrics --------------------------------------------------------------------

def test_models_lists_both(client):
    assert {m.id for m in client.models.list().data} == {"smollm2", "gemma3-270m"}
    assert client.models.retrieve("smollm2").id == "smollm2"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-9", messages=HI, max_tokens=4)
    assert raised.value.status_code == 404
    assert raised.value.code == "model_not_found"


def test_health_reports_models(server):
    response = httpx.get(f"{server.base_url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "models": ["smollm2", "gemma3-270m"]}


def test_metrics_parse_as_prometheus_text(server, client):
    client.completions.create(model="gemma3-270m", prompt="Hello", max_tokens=2, temperature=0)
    response = httpx.get(f"{server.base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert "labkit_requests" in families
    assert "labkit_sequences_active" in families
    assert "labkit_time_to_first_token_seconds" in families
    completion_tokens = [s.value for s in families["labkit_completion_tokens"].samples
                         if s.labels.get("model") == "gemma3-270m" and s.name.endswith("_total")]
    assert completion_tokens and completion_tokens[0] >= 2


def test_one_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="labkit.serve.engine"):
        client.chat.completions.create(model="smollm2", messages=HI, max_tokens=3, temperature=0)
    lines = [r.getMessage() for r in caplog.records if "model=smollm2" in r.getMessage()]
    assert len(lines) == 1
    for field in ("prompt_tokens=", "completion_tokens=3", "ttft=", "tokens/s=", "finish_reason=length"):
        assert field in lines[0]


# -- usage and finish_reason ---------------------------------------------------------------------

def test_chat_usage_counts_real_tokens(client, llama_tokenizers, server):
    reply = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=60, temperature=0,
                                           logprobs=True)
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    source = server.engine._served["smollm2"].model.chat_template
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    prompt = env.from_string(source).render(messages=HI, add_generation_prompt=True)
    expected_prompt = llama_tokenizers["smollm2"].tokenize(prompt.encode(), add_bos=False, special=True)
    assert reply.usage.prompt_tokens == len(expected_prompt)
    assert reply.usage.completion_tokens == len(choice.logprobs.content)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_completion_usage_counts_bos(client, llama_tokenizers):
    prompt = "The capital of France is"
    reply = client.completions.create(model="gemma3-270m", prompt=prompt, max_tokens=4, temperature=0)
    expected = llama_tokenizers["gemma3-270m"].tokenize(prompt.encode(), add_bos=True)
    assert reply.usage.prompt_tokens == len(expected)
    assert reply.usage.completion_tokens == 4
    assert reply.choices[0].finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_length_finish_in_both_modes(client, stream):
    kwargs = dict(model="smollm2", messages=HI, max_tokens=5, temperature=0)
    if not stream:
        reply = client.chat.completions.create(**kwargs)
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 5
        return
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert reasons == ["length"]
    assert chunks[-1].usage.completion_tokens == 5


def test_stop_finish_when_model_ends_turn(client):
    reply = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=100, temperature=0)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < 100


# -- seeds and streaming ------------------------------------------------------------------------

def test_same_seed_same_output(client):
    kwargs = dict(model="smollm2", messages=HI, max_tokens=24, temperature=1.0, seed=1234)
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    second = client.chat.completions.create(**kwargs).choices[0].message.content
    assert first == second


def test_different_seeds_differ(client):
    texts = {client.completions.create(model="gemma3-270m", prompt="Once upon a time", max_tokens=12,
                                       temperature=1.0, seed=seed).choices[0].text for seed in range(4)}
    assert len(texts) > 1


@pytest.mark.parametrize("model", ["smollm2", "gemma3-270m"])
def test_stream_equals_non_stream_chat(client, model):
    kwargs = dict(model=model, messages=HI, max_tokens=30, temperature=0.9, top_p=0.95, seed=7)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs, stream=True)
              if c.choices]
    assert "".join(pieces) == whole


def test_stream_equals_non_stream_completion(client):
    kwargs = dict(model="gemma3-270m", prompt="The recipe for bread:", max_tokens=30, temperature=1.0, seed=3)
    whole = client.completions.create(**kwargs).choices[0].text
    pieces = [c.choices[0].text for c in client.completions.create(**kwargs, stream=True) if c.choices]
    assert "".join(pieces) == whole


def test_chat_stream_event_order(server):
    response, data = stream_chat_raw(server, {"model": "smollm2", "messages": STORY, "max_tokens": 8,
                                              "temperature": 0, "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["finish_reason"] is None
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0] is chunks[-1]
    assert usage_chunks[0]["choices"] == []
    assert usage_chunks[0]["usage"]["completion_tokens"] == 8
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "length"
    assert finish["choices"][0]["delta"] == {}
    content = [c for c in chunks[1:-2]]
    assert content and all(c["choices"][0]["finish_reason"] is None for c in content)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1


def test_stream_without_usage_option_sends_no_usage(server):
    _, data = stream_chat_raw(server, {"model": "smollm2", "messages": HI, "max_tokens": 4})
    chunks = [json.loads(d) for d in data[:-1]]
    assert all("usage" not in c for c in chunks)
    assert data[-1] == "[DONE]"


def test_multibyte_characters_never_split(client):
    kwargs = dict(model="smollm2", messages=JAPANESE, max_tokens=30, temperature=0)
    whole = client.chat.completions.create(**kwargs, logprobs=True)
    token_bytes = [bytes(t.bytes) for t in whole.choices[0].logprobs.content]
    # The case is only a test if some token carries part of a character.
    assert any(not _is_valid_utf8(b) for b in token_bytes)

    chunks = [c for c in client.chat.completions.create(**kwargs, stream=True) if c.choices]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason][0]
    for i, piece in enumerate(pieces):
        # Only a character cut by max_tokens may end the text as U+FFFD.
        allowed = piece[:-1] if i == len(pieces) - 1 and finish == "length" else piece
        assert "\ufffd" not in allowed, piece
    assert "".join(pieces) == whole.choices[0].message.content
    assert any(ord(ch) > 0x3000 for ch in "".join(pieces))


# -- stop strings -------------------------------------------------------------------------------

def _stop_spanning_tokens(client, model, prompt) -> tuple[str, str]:
    """Return a greedy completion and a stop string that starts and ends inside tokens."""
    reply = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, logprobs=0)
    text = reply.choices[0].text
    offsets, tokens = reply.choices[0].logprobs.text_offset, reply.choices[0].logprobs.tokens
    # Take the end of token 4 through the start of token 6: it spans at least two token edges.
    start = offsets[4] + max(1, len(tokens[4]) // 2)
    end = offsets[6] + max(1, len(tokens[6]) // 2)
    return text, text[start:end]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_string_cut_and_not_leaked(client, stream):
    text, stop = _stop_spanning_tokens(client, "gemma3-270m", "Once upon a time")
    assert len(stop) >= 2
    expected = text[:text.index(stop)]
    kwargs = dict(model="gemma3-270m", prompt="Once upon a time", max_tokens=24, temperature=0, stop=[stop])
    if stream:
        chunks = list(client.completions.create(**kwargs, stream=True))
        got = "".join(c.choices[0].text for c in chunks if c.choices)
        reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        reply = client.completions.create(**kwargs)
        got, reasons = reply.choices[0].text, [reply.choices[0].finish_reason]
    assert got == expected
    assert reasons == ["stop"]


def test_chat_stop_string(client):
    whole = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=40, temperature=0)
    text = whole.choices[0].message.content
    stop = text[3:6]
    reply = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=40, temperature=0, stop=stop)
    assert reply.choices[0].message.content == text[:text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


# -- chat templates and special tokens ----------------------------------------------------------

@pytest.mark.parametrize("model", ["smollm2", "gemma3-270m"])
def test_no_special_tokens_in_content(client, model):
    reply = client.chat.completions.create(model=model, messages=HI, max_tokens=40, temperature=0)
    content = reply.choices[0].message.content
    assert content.strip()
    for special in SPECIAL_TEXTS:
        assert special not in content


def test_gemma_chat_uses_fallback_template(server, client):
    assert server.engine.model_info("gemma3-270m").chat_template == "fallback gemma.jinja"
    reply = client.chat.completions.create(model="gemma3-270m", messages=HI, max_tokens=10, temperature=0)
    assert reply.usage.prompt_tokens > 5


# -- sampling parameters ------------------------------------------------------------------------

def test_n_choices_and_usage(client):
    reply = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=6, temperature=1.0,
                                           seed=11, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    single = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=6, temperature=1.0, seed=11)
    assert reply.usage.prompt_tokens == single.usage.prompt_tokens
    assert reply.usage.completion_tokens == 18
    assert len({c.message.content for c in reply.choices}) > 1


def test_n_choices_stream(client):
    chunks = [c for c in client.completions.create(model="gemma3-270m", prompt="Hello", max_tokens=4, n=2,
                                                   stream=True, seed=2) if c.choices]
    finishes = sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason)
    assert finishes == [0, 1]


def test_top_k_one_is_greedy(client):
    greedy = client.completions.create(model="gemma3-270m", prompt="Water boils at", max_tokens=10, temperature=0)
    top_k = client.completions.create(model="gemma3-270m", prompt="Water boils at", max_tokens=10,
                                      temperature=1.0, seed=5, extra_body={"top_k": 1})
    tiny_p = client.completions.create(model="gemma3-270m", prompt="Water boils at", max_tokens=10,
                                       temperature=1.0, seed=5, top_p=1e-6)
    assert top_k.choices[0].text == greedy.choices[0].text
    assert tiny_p.choices[0].text == greedy.choices[0].text


def test_frequency_penalty_reduces_repeats(client):
    def most_repeated(**kwargs):
        reply = client.completions.create(model="gemma3-270m", prompt="The capital of France is",
                                          max_tokens=30, temperature=0, logprobs=0, **kwargs)
        return max(np.unique(reply.choices[0].logprobs.tokens, return_counts=True)[1])

    assert most_repeated(frequency_penalty=2.0) < most_repeated()
    assert most_repeated(presence_penalty=2.0) < most_repeated()


def test_logit_bias_forces_token(client, llama_tokenizers):
    token = llama_tokenizers["smollm2"].tokenize(b" banana", add_bos=False)[0]
    reply = client.completions.create(model="smollm2", prompt="I like", max_tokens=3, temperature=0,
                                      logit_bias={str(token): 100})
    assert reply.choices[0].text == " banana" * 3


def test_chat_logprobs_top_alternatives(client):
    reply = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=6, temperature=0,
                                           logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert len(content) == 6
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the likeliest
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)


def test_completion_echo_with_logprobs(client, llama_tokenizers):
    prompt = "Paris is the capital of"
    reply = client.completions.create(model="gemma3-270m", prompt=prompt, max_tokens=3, temperature=0,
                                      echo=True, logprobs=2)
    choice = reply.choices[0]
    prompt_ids = llama_tokenizers["gemma3-270m"].tokenize(prompt.encode(), add_bos=True)
    logprobs = choice.logprobs
    assert choice.text.startswith(prompt)
    assert len(logprobs.tokens) == len(prompt_ids) + 3
    assert logprobs.token_logprobs[0] is None
    assert all(lp <= 0 for lp in logprobs.token_logprobs[1:])
    assert logprobs.top_logprobs[0] is None
    assert all(len(top) == 2 for top in logprobs.top_logprobs[1:])
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    assert logprobs.text_offset[len(prompt_ids)] == len(prompt)


def test_echo_with_zero_tokens_scores_prompt(client):
    reply = client.completions.create(model="gemma3-270m", prompt="One two three", max_tokens=0, echo=True,
                                      logprobs=0)
    assert reply.choices[0].text == "One two three"
    assert reply.usage.completion_tokens == 0
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].logprobs.token_logprobs[1] < 0


def test_prompt_as_token_ids(client, llama_tokenizers):
    ids = llama_tokenizers["gemma3-270m"].tokenize(b"The sky is", add_bos=True)
    by_ids = client.completions.create(model="gemma3-270m", prompt=ids, max_tokens=5, temperature=0)
    by_text = client.completions.create(model="gemma3-270m", prompt="The sky is", max_tokens=5, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text


def test_several_prompts(client):
    reply = client.completions.create(model="gemma3-270m", prompt=["One", "Two"], max_tokens=2, n=2,
                                      temperature=0)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    assert reply.choices[0].text == reply.choices[1].text


def test_defaults_same_in_both_endpoints(server):
    engine = server.engine
    info = engine.model_info("smollm2")
    assert engine.settings.default_max_tokens <= info.n_ctx
    # With no sampling fields, both endpoints go through the same SamplingParams defaults: a seeded
    # request repeats, so the defaults are applied, not drawn at random per endpoint.
    body = {"model": "smollm2", "max_tokens": 6, "seed": 9}
    chat = [httpx.post(f"{server.base_url}/v1/chat/completions", json={**body, "messages": HI}, timeout=60)
            for _ in range(2)]
    completion = [httpx.post(f"{server.base_url}/v1/completions", json={**body, "prompt": "Hi"}, timeout=60)
                  for _ in range(2)]
    assert chat[0].json()["choices"][0]["message"] == chat[1].json()["choices"][0]["message"]
    assert completion[0].json()["choices"][0]["text"] == completion[1].json()["choices"][0]["text"]


# -- context limits -----------------------------------------------------------------------------

def test_long_prompt_rejected_before_streaming(server):
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "word " * 3000}], "stream": True}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_max_tokens_beyond_context_rejected(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model="gemma3-270m", prompt="Hi", max_tokens=5000)
    assert raised.value.code == "context_length_exceeded"
    assert raised.value.param == "max_tokens"


# -- embeddings ---------------------------------------------------------------------------------

def test_embeddings_float_and_base64_agree(client):
    texts = ["The cat sat on the mat.", "A feline rested on the rug."]
    as_float = client.embeddings.create(model="smollm2", input=texts, encoding_format="float")
    as_base64 = client.embeddings.create(model="smollm2", input=texts)  # the client asks for base64
    for a, b in zip(as_float.data, as_base64.data):
        assert len(a.embedding) == 576
        assert np.allclose(a.embedding, b.embedding, atol=1e-6)
        assert np.linalg.norm(a.embedding) == pytest.approx(1.0, abs=1e-4)
    assert as_float.usage.prompt_tokens > 0


def test_embedding_same_alone_and_in_batch(client):
    alone = client.embeddings.create(model="smollm2", input="hello world", encoding_format="float")
    batch = client.embeddings.create(model="smollm2", input=["something else entirely", "hello world"],
                                     encoding_format="float")
    assert np.allclose(alone.data[0].embedding, batch.data[1].embedding, atol=1e-4)
