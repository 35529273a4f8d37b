"""Run queries (chat, completions, embeddings) on a local model and build Databricks' responses.

The responses follow the OpenAI shapes that Databricks Foundation Model APIs return: ``id``,
``object`` (``chat.completion``, ``text_completion`` or ``list``), ``created``, ``model``,
``choices`` or ``data``, and ``usage``. ``model`` names the local model that produced the reply and
``usage`` counts the tokens that model really processed: the prompt as its tokenizer and chat
template made it, and the tokens it generated. With ``stream: true``, chat and completions come as
server-sent events of ``chat.completion.chunk`` (or ``text_completion``) objects, then ``[DONE]``.

The model work is done by a :class:`~labkit.databricks.backend.EngineBackend`, which runs
``labkit.serve``'s engine.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import AsyncIterator

from labkit.databricks import errors
from labkit.databricks.backend import EngineBackend
from labkit.databricks.endpoints import Target
from labkit.databricks.foundation import CHAT, COMPLETIONS, EMBEDDINGS
from labkit.databricks.schemas import (TASK_FIELDS, ChatRequest, CompletionRequest, EmbeddingRequest,
                                       parse)

Request = ChatRequest | CompletionRequest | EmbeddingRequest


def parse_query(target: Target, body: dict) -> Request:
    """Check that the body fits the endpoint's task, then validate it.

    >>> chat = Target("e", "llm/v1/chat", "smollm2", "smollm2", [], False)
    >>> parse_query(chat, {"prompt": "Hi"})
    Traceback (most recent call last):
    ...
    labkit.databricks.errors.DatabricksError: Endpoint 'e' serves llm/v1/chat and expects 'messages'; 'prompt' is the input of llm/v1/completions endpoints.
    """
    expected = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}[target.task]
    if expected not in body:
        sent = [f for f in TASK_FIELDS if f in body]
        detail = (f"; '{sent[0]}' is the input of {TASK_FIELDS[sent[0]]} endpoints" if sent
                  else f"; the body has no '{expected}' field")
        raise errors.invalid_parameter(
            f"Endpoint '{target.endpoint}' serves {target.task} and expects '{expected}'{detail}.")
    model = {CHAT: ChatRequest, COMPLETIONS: CompletionRequest, EMBEDDINGS: EmbeddingRequest}[target.task]
    return parse(model, body)


def _params(request: ChatRequest | CompletionRequest) -> dict:
    """Sampling fields for the engine; None leaves a field at the engine's documented default."""
    return {"max_tokens": request.max_tokens, "temperature": request.temperature,
            "top_p": request.top_p, "seed": request.seed, "n": request.n,
            "stop": request.stop_list() or None}


def _usage(prompt_tokens: int, completion_tokens: int | None = None) -> dict:
    if completion_tokens is None:
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def run(backend: EngineBackend, target: Target, request: Request) -> dict:
    """Run a request to the end and return the whole response body."""
    if isinstance(request, EmbeddingRequest):
        return await _run_embeddings(backend, target, request)

    if isinstance(request, ChatRequest):
        messages = [m.model_dump() for m in request.messages]
        generation = await backend.chat(target.local_model, messages, _params(request))
        choices = [{"index": c.index, "message": {"role": "assistant", "content": c.text},
                    "finish_reason": c.finish_reason, "logprobs": None} for c in generation.choices]
        kind = "chat.completion"
    else:
        generation = await backend.complete(target.local_model, request.prompts(), _params(request))
        choices = [{"index": c.index, "text": c.text, "finish_reason": c.finish_reason,
                    "logprobs": None} for c in generation.choices]
        kind = "text_completion"

    usage = generation.usage
    return {"id": generation.id, "object": kind, "created": generation.created,
            "model": backend.model_id(target.local_model),
            "choices": choices, "usage": _usage(usage.prompt_tokens, usage.completion_tokens)}


async def _run_embeddings(backend: EngineBackend, target: Target, request: EmbeddingRequest) -> dict:
    result = await backend.embed(target.local_model, request.inputs())
    data = []
    for index, vector in enumerate(result.vectors):
        embedding = vector if request.encoding_format == "float" else _base64_floats(vector)
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "model": backend.model_id(target.local_model), "data": data,
            "usage": _usage(result.usage.prompt_tokens)}


def _base64_floats(vector: list[float]) -> str:
    """Encode a vector as openai's client expects for ``encoding_format="base64"``: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


async def open_stream(backend: EngineBackend, target: Target,
                      request: ChatRequest | CompletionRequest) -> "EventStream":
    """Start a streamed request; errors in the request raise here, before any event is sent."""
    if isinstance(request, EmbeddingRequest):
        raise errors.invalid_parameter("Embeddings cannot be streamed; remove 'stream'.")
    if isinstance(request, ChatRequest):
        messages = [m.model_dump() for m in request.messages]
        stream = await backend.stream_chat(target.local_model, messages, _params(request))
    else:
        stream = await backend.stream_complete(target.local_model, request.prompts(), _params(request))
    return EventStream(stream, isinstance(request, ChatRequest), backend.model_id(target.local_model))


class EventStream:
    """Server-sent events of one streamed request; ``usage`` is set once the stream is exhausted."""

    def __init__(self, stream, chat: bool, model_id: str):
        self._stream = stream
        self._chat = chat
        self._model_id = model_id
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.usage: dict | None = None

    def _chunk(self, index: int, text: str, finish_reason: str | None, first: bool) -> dict:
        if self._chat:
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            choice = {"index": index, "delta": delta, "finish_reason": finish_reason}
            kind = "chat.completion.chunk"
        else:
            choice = {"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}
            kind = "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self._model_id,
                "choices": [choice]}

    async def events(self) -> AsyncIterator[str]:
        started: set[int] = set()
        try:
            async for delta in self._stream:
                chunk = self._chunk(delta.index, delta.text, delta.finish_reason,
                                    first=delta.index not in started)
                started.add(delta.index)
                yield f"data: {json.dumps(chunk)}\n\n"
        finally:
            await self._stream.aclose()
        usage = self._stream.usage
        self.usage = _usage(usage.prompt_tokens, usage.completion_tokens)
        final = {"id": self.id, "object": "chat.completion.chunk" if self._chat else "text_completion",
                 "created": self.created, "model": self._model_id, "choices": [], "usage": self.usage}
        yield f"data: {json.dumps(final)}\n\n"
        yield "data: [DONE]\n\n"
