"""Malformed requests: every one gets a 4xx with the OpenAI error shape, never a 500 or a stream."""

import httpx
import pytest

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
USER = [{"role": "user", "content": "Hi"}]


def chat(**fields):
    return {"model": "smollm2", "messages": USER, "max_tokens": 2, **fields}


def completion(**fields):
    return {"model": "gemma3-270m", "prompt": "Hi", "max_tokens": 2, **fields}


def without(body: dict, key: str) -> dict:
    return {k: v for k, v in body.items() if k != key}


# (name, method, path, JSON body or raw bytes, expected status, expected param or None)
MALFORMED = [
    ("invalid json", "POST", CHAT, b'{"model": "smollm2", "messages": [', 400, None),
    ("body is an array", "POST", CHAT, [1, 2, 3], 400, None),
    ("body is a string", "POST", CHAT, "hello", 400, None),
    ("missing model", "POST", CHAT, without(chat(), "model"), 400, "model"),
    ("missing messages", "POST", CHAT, without(chat(), "messages"), 400, "messages"),
    ("missing prompt", "POST", COMPLETIONS, without(completion(), "prompt"), 400, "prompt"),
    ("empty messages", "POST", CHAT, chat(messages=[]), 400, "messages"),
    ("messages not a list", "POST", CHAT, chat(messages="Hi"), 400, "messages"),
    ("unknown role", "POST", CHAT, chat(messages=[{"role": "wizard", "content": "x"}]), 400, "messages.0.role"),
    ("content is a number", "POST", CHAT, chat(messages=[{"role": "user", "content": 5}]), 400,
     "messages.0.content"),
    ("image content part", "POST", CHAT, chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}]), 400, None),
    ("temperature is a string", "POST", CHAT, chat(temperature="hot"), 400, "temperature"),
    ("temperature too high", "POST", CHAT, chat(temperature=3), 400, "temperature"),
    ("top_p zero", "POST", COMPLETIONS, completion(top_p=0), 400, "top_p"),
    ("top_k negative", "POST", COMPLETIONS, completion(top_k=-1), 400, "top_k"),
    ("max_tokens is a string", "POST", CHAT, chat(max_tokens="10"), 400, "max_tokens"),
    ("max_tokens is a float", "POST", CHAT, chat(max_tokens=2.5), 400, "max_tokens"),
    ("max_tokens negative", "POST", COMPLETIONS, completion(max_tokens=-1), 400, "max_tokens"),
    ("max_tokens beyond context", "POST", CHAT, chat(max_tokens=100_000), 400, "max_tokens"),
    ("n zero", "POST", CHAT, chat(n=0), 400, "n"),
    ("n too large", "POST", CHAT, chat(n=100), 400, "n"),
    ("five stop strings", "POST", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ("stop is a number", "POST", CHAT, chat(stop=7), 400, "stop"),
    ("completion logprobs above 5", "POST", COMPLETIONS, completion(logprobs=10), 400, "logprobs"),
    ("top_logprobs without logprobs", "POST", CHAT, chat(top_logprobs=2), 400, None),
    ("top_logprobs above 20", "POST", CHAT, chat(logprobs=True, top_logprobs=50), 400, "top_logprobs"),
    ("unknown field", "POST", CHAT, chat(temprature=0.5), 400, "temprature"),
    ("echo on chat", "POST", CHAT, chat(echo=True), 400, "echo"),
    ("unknown model", "POST", CHAT, chat(model="gpt-4o"), 404, "model"),
    ("unknown model for completions", "POST", COMPLETIONS, completion(model="llama"), 404, "model"),
    ("stream is a string", "POST", CHAT, chat(stream="yes"), 400, "stream"),
    ("stream_options without stream", "POST", CHAT, chat(stream_options={"include_usage": True}), 400, None),
    ("logit_bias value not a number", "POST", CHAT, chat(logit_bias={"42": "high"}), 400, "logit_bias.42"),
    ("logit_bias key not a token id", "POST", CHAT, chat(logit_bias={"abc": 1}), 400, "logit_bias"),
    ("logit_bias token outside vocabulary", "POST", CHAT, chat(logit_bias={"999999": 1}), 400, "logit_bias"),
    ("logit_bias value too large", "POST", CHAT, chat(logit_bias={"42": 500}), 400, "logit_bias"),
    ("presence_penalty too large", "POST", CHAT, chat(presence_penalty=5), 400, "presence_penalty"),
    ("seed is a string", "POST", CHAT, chat(seed="42"), 400, "seed"),
    ("prompt token id outside vocabulary", "POST", COMPLETIONS, completion(prompt=[1, 10_000_000]), 400, "prompt"),
    ("prompt of booleans", "POST", COMPLETIONS, completion(prompt=[True, False]), 400, "prompt"),
    ("empty prompt without bos", "POST", COMPLETIONS, completion(model="smollm2", prompt=""), 400, "prompt"),
    ("prompt longer than context", "POST", COMPLETIONS, completion(prompt="word " * 5000), 400, "prompt"),
    ("long prompt with stream", "POST", CHAT,
     chat(messages=[{"role": "user", "content": "word " * 5000}], stream=True), 400, "messages"),
    ("suffix", "POST", COMPLETIONS, completion(suffix="end"), 400, "suffix"),
    ("best_of above n", "POST", COMPLETIONS, completion(best_of=3), 400, None),
    ("json response format", "POST", CHAT, chat(response_format={"type": "json_object"}), 400,
     "response_format.type"),
    ("max_tokens and max_completion_tokens disagree", "POST", CHAT, chat(max_completion_tokens=5), 400, None),
    ("embeddings from a model without them", "POST", EMBEDDINGS, {"model": "gemma3-270m", "input": "x"}, 400,
     "model"),
    ("embeddings with wrong dimensions", "POST", EMBEDDINGS, {"model": "smollm2", "input": "x", "dimensions": 3},
     400, "dimensions"),
    ("embeddings of empty list", "POST", EMBEDDINGS, {"model": "smollm2", "input": []}, 400, "input"),
    ("embeddings bad encoding", "POST", EMBEDDINGS, {"model": "smollm2", "input": "x", "encoding_format": "hex"},
     400, "encoding_format"),
    ("wrong method", "GET", CHAT, None, 405, None),
    ("unknown route", "POST", "/v1/engines/davinci/completions", completion(), 404, None),
]


@pytest.mark.parametrize("name, method, path, body, status, param", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_gets_4xx(server, name, method, path, body, status, param):
    if isinstance(body, bytes):
        response = httpx.request(method, server.base_url + path, content=body,
                                 headers={"Content-Type": "application/json"}, timeout=60)
    else:
        response = httpx.request(method, server.base_url + path, json=body, timeout=60)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param


def test_suite_has_at_least_twenty_cases():
    assert len(MALFORMED) >= 20


def test_no_sequence_left_behind(server):
    # None of the rejected requests may hold a KV cache slot or wait in a queue.
    for scheduler in (s.scheduler for s in server.engine._served.values()):
        assert scheduler.active == 0
        assert scheduler.waiting == 0
