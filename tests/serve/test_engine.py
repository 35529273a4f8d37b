"""Tests of the in-process engine API (what a stand-in serving platform calls), on the real models."""

import asyncio

import pytest

from labkit.serve.errors import ContextLengthExceeded, InvalidRequest, ModelNotFound

pytestmark = pytest.mark.slow

HI = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def engine(server):
    return server.engine


def test_chat_returns_text_reason_usage(engine):
    reply = asyncio.run(engine.chat("smollm2", HI, max_tokens=5, temperature=0))
    assert reply.text
    assert reply.finish_reason == "length"
    assert reply.usage.completion_tokens == 5
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 5
    assert reply.id.startswith("chatcmpl-")


def test_complete_matches_stream(engine):
    async def both():
        whole = await engine.complete("gemma3-270m", "Rain falls", max_tokens=12, temperature=0.8, seed=4)
        stream = await engine.stream_complete("gemma3-270m", "Rain falls", max_tokens=12, temperature=0.8, seed=4)
        pieces = [delta async for delta in stream]
        return whole, pieces, stream

    whole, pieces, stream = asyncio.run(both())
    assert "".join(d.text for d in pieces) == whole.text
    assert pieces[-1].finish_reason == whole.finish_reason
    assert stream.usage == whole.usage


def test_errors_raise_before_stream(engine):
    async def start(**kwargs):
        return await engine.stream_chat(kwargs.pop("model", "smollm2"), kwargs.pop("messages", HI), **kwargs)

    with pytest.raises(ModelNotFound):
        asyncio.run(start(model="nope"))
    with pytest.raises(ContextLengthExceeded):
        asyncio.run(start(max_tokens=10**6))
    with pytest.raises(InvalidRequest) as raised:
        asyncio.run(start(temperature="hot"))
    assert raised.value.param == "temperature"
    with pytest.raises(InvalidRequest):
        asyncio.run(start(messages=[{"role": "robot", "content": "x"}]))


def test_negative_seed_accepted(engine):
    first = asyncio.run(engine.complete("smollm2", "Hi", max_tokens=4, seed=-1))
    second = asyncio.run(engine.complete("smollm2", "Hi", max_tokens=4, seed=-1))
    assert first.text == second.text


def test_closing_stream_frees_sequence(engine):
    scheduler = engine._served["gemma3-270m"].scheduler

    async def read_two_then_close():
        stream = await engine.stream_complete("gemma3-270m", "Once upon a time", max_tokens=500,
                                              logit_bias={1: -100, 106: -100})
        pieces = []
        async for delta in stream:
            pieces.append(delta)
            if len(pieces) == 2:
                break
        await stream.aclose()
        for _ in range(200):
            if scheduler.active == 0:
                return pieces
            await asyncio.sleep(0.05)
        raise AssertionError("the sequence still holds its slot")

    assert len(asyncio.run(read_two_then_close())) == 2


def test_embed_returns_unit_vectors(engine):
    result = asyncio.run(engine.embed("smollm2", ["one", "two words"]))
    assert len(result.vectors) == 2
    assert len(result.vectors[0]) == engine.model_info("smollm2").embedding_size
    assert result.usage.prompt_tokens == engine.count_tokens("smollm2", "one") + engine.count_tokens("smollm2", "two words")


def test_model_info(engine):
    info = engine.model_info("gemma3-270m")
    assert info.architecture == "gemma3"
    assert info.n_ctx == engine.settings.n_ctx
    assert info.n_vocab == 262144
    assert not info.embeddings
