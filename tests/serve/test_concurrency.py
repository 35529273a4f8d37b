"""Concurrency, cancellation, queue limits, API keys and body limits on live servers with real models."""

import asyncio
import logging
import time

import httpx
import openai
import pytest

from labkit.serve import serve_in_background
from labkit.serve.settings import ServeSettings

pytestmark = pytest.mark.slow

API_KEY = "sk-labkit-test"
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]


@pytest.fixture(scope="module")
def small_server():
    """One SmolLM2 sequence, no queue, an API key and a 4 KB body limit."""
    with serve_in_background(models={"smollm2": "smollm2"}, embedding_models=[], n_parallel=1, max_queue=0,
                             api_key=API_KEY, max_body_bytes=4096) as running:
        yield running


def _wait_until_idle(scheduler, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while scheduler.active or scheduler.waiting:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{scheduler.active} sequences still active after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _no_end_of_generation(server, model: str) -> dict:
    """A logit_bias that keeps the model from ending its text, so only the client can stop it."""
    special = server.engine._served[model].model.special
    return {str(t): -100 for t in {special.eos, special.eot} if t >= 0}


# -- every concurrent stream completes ---------------------------------------------------------

async def _stream(client, seed: int) -> dict:
    roles, finishes, text, usage = 0, [], "", None
    stream = await client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=24, temperature=1.0,
                                                  seed=seed, stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            roles += choice.delta.role == "assistant"
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return {"roles": roles, "finishes": finishes, "text": text, "usage": usage}


def test_eight_concurrent_streams_all_complete(server):
    scheduler = server.engine._served["smollm2"].scheduler
    steps, tokens = scheduler.steps, scheduler.batched_tokens

    async def run_all():
        client = server.async_openai_client(max_retries=0, timeout=300)
        return await asyncio.gather(*[_stream(client, seed) for seed in range(8)])

    results = asyncio.run(run_all())
    for result in results:
        assert result["roles"] == 1
        assert len(result["finishes"]) == 1
        assert result["usage"] is not None
        assert result["usage"].completion_tokens > 0
        assert result["text"]
    # Tokens per llama_decode call: well above 1 only if the streams were decoded together.
    assert (scheduler.batched_tokens - tokens) / (scheduler.steps - steps) > 2

    # SmolLM2's logits do not depend on the batch, so each seeded stream matches its solo run.
    client = server.openai_client(max_retries=0, timeout=120)
    for seed in (0, 5):
        alone = client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=24, temperature=1.0,
                                               seed=seed)
        assert alone.choices[0].message.content == results[seed]["text"]


def test_request_joins_running_stream(server, client):
    # A second request must not interrupt the first (llama-cpp-python's server does).
    bias = _no_end_of_generation(server, "gemma3-270m")
    with client.completions.with_streaming_response.create(model="gemma3-270m", prompt="Once upon a time",
                                                           max_tokens=40, stream=True, logit_bias=bias) as first:
        lines = first.iter_lines()
        next(lines)
        second = client.completions.create(model="gemma3-270m", prompt="Hello", max_tokens=5, logit_bias=bias)
        rest = [line for line in lines if line.startswith("data:")]
    assert second.usage.completion_tokens == 5
    assert rest[-1] == "data: [DONE]"
    assert '"finish_reason":"length"' in rest[-2]


# -- cancellation frees the sequence -----------------------------------------------------------

def _cancelled_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if "model=gemma3-270m" in r.getMessage() and "finish_reason=cancelled" in r.getMessage()]


def test_stream_disconnect_frees_sequence(server, caplog):
    caplog.set_level(logging.INFO, logger="labkit.serve.engine")
    scheduler = server.engine._served["gemma3-270m"].scheduler
    body = {"model": "gemma3-270m", "prompt": "Once upon a time", "max_tokens": 1500, "stream": True,
            "logit_bias": _no_end_of_generation(server, "gemma3-270m")}
    with httpx.stream("POST", f"{server.base_url}/v1/completions", json=body, timeout=60) as response:
        events = response.iter_lines()
        received = [line for _, line in zip(range(6), events)]
        assert any(line.startswith("data:") for line in received)
        assert scheduler.active == 1
    # 1500 tokens take far longer than this at tens of tokens per second.
    assert _wait_until_idle(scheduler) < 10
    assert len(_cancelled_lines(caplog)) == 1


def test_non_stream_disconnect_frees_sequence(server, caplog):
    caplog.set_level(logging.INFO, logger="labkit.serve.engine")
    scheduler = server.engine._served["gemma3-270m"].scheduler
    body = {"model": "gemma3-270m", "prompt": "Once upon a time", "max_tokens": 1500,
            "logit_bias": _no_end_of_generation(server, "gemma3-270m")}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=httpx.Timeout(60, read=1.5))
    assert _wait_until_idle(scheduler) < 10
    assert len(_cancelled_lines(caplog)) == 1


# -- bounded queue -----------------------------------------------------------------------------

def test_full_queue_gets_429_with_retry_after(small_server):
    url = f"{small_server.base_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    bias = _no_end_of_generation(small_server, "smollm2")
    body = {"model": "smollm2", "messages": STORY, "max_tokens": 1000, "stream": True, "logit_bias": bias}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as running:
        next(running.iter_lines())
        rejected = httpx.post(url, json={**body, "stream": False, "max_tokens": 4}, headers=headers, timeout=60)
        client = small_server.openai_client(max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=4)

    assert rejected.status_code == 429
    assert int(rejected.headers["Retry-After"]) >= 1
    assert rejected.json()["error"]["type"] == "rate_limit_error"
    assert set(rejected.json()["error"]) == {"message", "type", "param", "code"}

    # Closing the stream frees the only slot, so the next request is served.
    _wait_until_idle(small_server.engine._served["smollm2"].scheduler)
    reply = small_server.openai_client(max_retries=0).chat.completions.create(
        model="smollm2", messages=STORY, max_tokens=3)
    assert reply.usage.completion_tokens == 3


# -- API key -----------------------------------------------------------------------------------

def test_missing_api_key_gets_openai_401(small_server):
    response = httpx.get(f"{small_server.base_url}/v1/models")
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "invalid_api_key"


def test_wrong_api_key_rejected(small_server):
    with pytest.raises(openai.AuthenticationError) as raised:
        small_server.openai_client(api_key="sk-wrong", max_retries=0).models.list()
    assert raised.value.status_code == 401
    response = httpx.get(f"{small_server.base_url}/v1/models", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


def test_right_api_key_accepted(small_server):
    assert [m.id for m in small_server.openai_client(max_retries=0).models.list().data] == ["smollm2"]


def test_health_needs_no_key(small_server):
    assert httpx.get(f"{small_server.base_url}/health").status_code == 200


# -- body size limit ---------------------------------------------------------------------------

def test_large_body_gets_413(small_server):
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "x" * 10_000}]}
    response = httpx.post(f"{small_server.base_url}/v1/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_large_chunked_body_gets_413(small_server):
    def chunks():
        yield b'{"model": "smollm2", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"}]}'

    response = httpx.post(f"{small_server.base_url}/v1/chat/completions", content=chunks(),
                          headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert response.status_code == 413
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# -- settings ----------------------------------------------------------------------------------

def test_binds_loopback_by_default():
    assert ServeSettings().host == "127.0.0.1"


def test_settings_print_masks_key():
    text = ServeSettings(api_key=API_KEY).describe()
    assert "api_key: set" in text
    assert API_KEY not in text
