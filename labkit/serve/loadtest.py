"""Measure an OpenAI-compatible server from the client side: time to first token, tokens/s, completion.

Works against any server that streams ``/v1/completions`` as server-sent events (labkit's,
llama-cpp-python's, llama.cpp's, vLLM), and against llama-cpp-python called directly, so the
numbers compare like with like. A stream counts as *completed* when it ends with ``[DONE]`` after
a chunk whose finish_reason is ``"length"``. With the end-of-text token biased away, that means it
delivered every requested token.

>>> body = {"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 64, "temperature": 0}
>>> result = await load_test("http://127.0.0.1:8000", body, clients=4)      # doctest: +SKIP
>>> result.completion_rate, round(result.aggregate_tokens_per_second)      # doctest: +SKIP
(1.0, 190)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class StreamResult:
    """One client's view of one streamed completion."""

    tokens: int = 0                          # chunks with text; one token each on these servers
    time_to_first_token: float | None = None
    first_token_at: float | None = None      # seconds after the request started
    duration: float = 0.0                    # request start to end of stream
    finish_reason: str | None = None
    done: bool = False                       # the stream ended with [DONE]
    error: str | None = None

    @property
    def completed(self) -> bool:
        """Whether the stream delivered everything: [DONE] after finish_reason "length"."""
        return self.done and self.finish_reason == "length" and self.error is None

    @property
    def decode_rate(self) -> float | None:
        """Tokens per second after the first token (None with fewer than two tokens)."""
        if self.tokens < 2 or self.first_token_at is None or self.duration <= self.first_token_at:
            return None
        return (self.tokens - 1) / (self.duration - self.first_token_at)


@dataclass
class LoadResult:
    """``clients`` streams started together, and the wall time until the last one ended."""

    clients: int
    wall_time: float
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def completion_rate(self) -> float:
        """Share of streams that delivered every requested token (1.0 is all)."""
        return sum(s.completed for s in self.streams) / max(1, len(self.streams))

    @property
    def aggregate_tokens_per_second(self) -> float:
        """Tokens of completed streams per second of wall time; cut-off streams count for nothing."""
        return sum(s.tokens for s in self.streams if s.completed) / self.wall_time

    @property
    def median_time_to_first_token(self) -> float | None:
        values = [s.time_to_first_token for s in self.streams if s.time_to_first_token is not None]
        return statistics.median(values) if values else None

    @property
    def median_decode_rate(self) -> float | None:
        """Median per-stream tokens/s after the first token."""
        values = [s.decode_rate for s in self.streams if s.decode_rate is not None]
        return statistics.median(values) if values else None


async def stream_completion(http: httpx.AsyncClient, base_url: str, body: dict) -> StreamResult:
    """Send one streamed ``/v1/completions`` request and time its chunks."""
    result = StreamResult()
    started = time.perf_counter()
    try:
        async with http.stream("POST", f"{base_url}/v1/completions", json={**body, "stream": True}) as response:
            if response.status_code != 200:
                result.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    result.done = True
                    break
                _read_chunk(json.loads(data), result, time.perf_counter() - started)
    except httpx.HTTPError as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        result.duration = time.perf_counter() - started
    return result


def _read_chunk(chunk: dict, result: StreamResult, elapsed: float) -> None:
    if "error" in chunk:
        result.error = str(chunk["error"])
        return
    for choice in chunk.get("choices") or []:
        if choice.get("text"):
            result.tokens += 1
            if result.first_token_at is None:
                result.first_token_at = result.time_to_first_token = elapsed
        if choice.get("finish_reason"):
            result.finish_reason = choice["finish_reason"]


async def load_test(base_url: str, body: dict, clients: int, *, timeout: float = 600.0) -> LoadResult:
    """Start ``clients`` identical streamed completions at once and wait for all of them."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        started = time.perf_counter()
        streams = await asyncio.gather(*[stream_completion(http, base_url, body) for _ in range(clients)])
        wall_time = time.perf_counter() - started
    return LoadResult(clients=clients, wall_time=wall_time, streams=list(streams))


def stream_direct(llm, prompt: str, *, max_tokens: int, logit_bias: dict[int, float] | None = None) -> StreamResult:
    """Time a greedy streamed completion from a ``llama_cpp.Llama`` called in-process, no HTTP."""
    result = StreamResult()
    started = time.perf_counter()
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stream=True,
                                       logit_bias=logit_bias):
        _read_chunk(chunk, result, time.perf_counter() - started)
    result.duration = time.perf_counter() - started
    result.done = True
    return result
