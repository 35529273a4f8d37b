"""The OpenAI-compatible HTTP API over an :class:`labkit.serve.engine.Engine`, built with FastAPI.

Routes: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions``,
``POST /v1/embeddings``, ``GET /health``, ``GET /metrics`` (Prometheus text). Every client
mistake gets a 4xx with the OpenAI error body ``{"error": {"message", "type", "param", "code"}}``;
streamed requests are fully checked before the first event is sent.

>>> from fastapi.testclient import TestClient                         # doctest: +SKIP
>>> client = TestClient(create_app(Engine()))                         # doctest: +SKIP
>>> client.post("/v1/completions", json={"model": "nope", "prompt": "x"}).status_code  # doctest: +SKIP
404
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from labkit.serve import schemas
from labkit.serve.engine import Engine, Generation, Stream
from labkit.serve.errors import AuthenticationFailed, EngineFailure, InvalidRequest, PayloadTooLarge, ServeError
from labkit.serve.metrics import CONTENT_TYPE
from labkit.serve.scheduler import TokenLogprob

log = logging.getLogger(__name__)

_ROUTES = {"/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions",
           "/v1/embeddings"}


def create_app(engine: Engine) -> FastAPI:
    """Return the FastAPI application serving ``engine`` with the engine's settings."""
    settings = engine.settings
    app = FastAPI(title="labkit serve", version="1",
                  description="OpenAI-compatible completions, chat and embeddings on local GGUF models.")
    app.state.engine = engine
    _add_error_handlers(app)
    app.add_middleware(_ResponseCounter, metrics=engine.metrics)
    app.add_middleware(_BodySizeLimit, max_bytes=settings.max_body_bytes)

    async def check_api_key(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header:
            raise AuthenticationFailed("You didn't provide an API key. Send it in the Authorization "
                                       "header as 'Bearer YOUR_KEY'.")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
                key.strip().encode(), settings.api_key.get_secret_value().encode()):
            raise AuthenticationFailed("Incorrect API key provided.")

    protected = [Depends(check_api_key)]

    @app.get("/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        return schemas.Health(models=engine.model_ids)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models", response_model=schemas.ModelList, dependencies=protected)
    async def list_models() -> schemas.ModelList:
        cards = [schemas.ModelCard(id=m, created=engine.model_info(m).created) for m in engine.model_ids]
        return schemas.ModelList(data=cards)

    @app.get("/v1/models/{model_id}", response_model=schemas.ModelCard, dependencies=protected)
    async def get_model(model_id: str) -> schemas.ModelCard:
        return schemas.ModelCard(id=model_id, created=engine.model_info(model_id).created)

    @app.post("/v1/completions", response_model=schemas.CompletionResponse, dependencies=protected,
              responses={400: {"model": schemas.ErrorResponse}, 404: {"model": schemas.ErrorResponse},
                         429: {"model": schemas.ErrorResponse}})
    async def completions(body: schemas.CompletionRequest, request: Request):
        params = _generation_params(body)
        stream = await engine.stream_complete(body.model, body.prompt, echo=body.echo,
                                              logprobs=body.logprobs, **params)
        if body.stream:
            return _event_response(_completion_events(stream, body))
        generation = await _collect_unless_disconnected(stream, request)
        if generation is None:
            return Response(status_code=499)
        return schemas.CompletionResponse(
            id=generation.id, created=generation.created, model=generation.model,
            choices=[schemas.CompletionChoice(index=c.index, text=c.text, finish_reason=c.finish_reason,
                                              logprobs=_completion_logprobs(c.logprobs))
                     for c in generation.choices],
            usage=schemas.Usage(**vars(generation.usage)))

    @app.post("/v1/chat/completions", response_model=schemas.ChatCompletionResponse,
              dependencies=protected,
              responses={400: {"model": schemas.ErrorResponse}, 404: {"model": schemas.ErrorResponse},
                         429: {"model": schemas.ErrorResponse}})
    async def chat_completions(body: schemas.ChatCompletionRequest, request: Request):
        params = _generation_params(body)
        if body.max_completion_tokens is not None:
            params["max_tokens"] = body.max_completion_tokens
        logprobs = (body.top_logprobs or 0) if body.logprobs else None
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        stream = await engine.stream_chat(body.model, messages, logprobs=logprobs, **params)
        if body.stream:
            return _event_response(_chat_events(stream, body))
        generation = await _collect_unless_disconnected(stream, request)
        if generation is None:
            return Response(status_code=499)
        return schemas.ChatCompletionResponse(
            id=generation.id, created=generation.created, model=generation.model,
            choices=[schemas.ChatChoice(index=c.index, message=schemas.AssistantMessage(content=c.text),
                                        finish_reason=c.finish_reason,
                                        logprobs=_chat_logprobs(c.logprobs))
                     for c in generation.choices],
            usage=schemas.Usage(**vars(generation.usage)))

    @app.post("/v1/embeddings", response_model=schemas.EmbeddingResponse, dependencies=protected)
    async def embeddings(body: schemas.EmbeddingRequest) -> schemas.EmbeddingResponse:
        info = engine.model_info(body.model)
        size = info.embedding_size
        if info.embeddings and body.dimensions is not None and body.dimensions != size:
            raise InvalidRequest(f"{info.id} returns vectors of {size} dimensions; dimensions must be "
                                 f"{size} or absent.", param="dimensions")
        result = await engine.embed(body.model, body.input)
        data = []
        for index, vector in enumerate(result.vectors):
            if body.encoding_format == "base64":
                # The openai client decodes base64 embeddings as little-endian float32.
                encoded = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
                data.append(schemas.EmbeddingData(index=index, embedding=encoded))
            else:
                data.append(schemas.EmbeddingData(index=index, embedding=vector))
        return schemas.EmbeddingResponse(data=data, model=result.model, usage=schemas.EmbeddingUsage(
            prompt_tokens=result.usage.prompt_tokens, total_tokens=result.usage.total_tokens))

    return app


# -- requests to engine calls -----------------------------------------------------------------

def _generation_params(body: schemas._GenerationFields) -> dict:
    """Map the parameters both endpoints share to engine keywords, the same way for both."""
    return dict(max_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p,
                top_k=body.top_k, n=body.n, stop=body.stop, seed=body.seed,
                presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
                logit_bias=body.logit_bias)


async def _collect_unless_disconnected(stream: Stream, request: Request) -> Generation | None:
    """Wait for the whole generation, or cancel it (and return None) if the client goes away."""
    collecting = asyncio.ensure_future(stream.collect())
    watching = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({collecting, watching}, return_when=asyncio.FIRST_COMPLETED)
        if collecting in done:
            return collecting.result()
        log.info("%s: client disconnected; cancelling", stream.id)
        collecting.cancel()
        await stream.aclose()
        return None
    finally:
        watching.cancel()
        if not collecting.done():
            collecting.cancel()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


# -- streaming --------------------------------------------------------------------------------

def _event_response(events) -> EventSourceResponse:
    return EventSourceResponse(events, ping=15, headers={"Cache-Control": "no-cache"})


def _dump(model) -> str:
    return model.model_dump_json(exclude_none=False)


async def _chat_events(stream: Stream, body: schemas.ChatCompletionRequest):
    """Yield the SSE data of a chat stream: role, content pieces, finish, usage if asked, [DONE]."""
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    exclude = None if include_usage else {"usage"}

    def chunk(choices, usage=None) -> str:
        message = schemas.ChatCompletionChunk(id=stream.id, created=stream.created, model=stream.model,
                                              choices=choices, usage=usage)
        return message.model_dump_json(exclude=exclude)

    try:
        for index in range(stream.n_choices):
            yield {"data": chunk([schemas.ChatChunkChoice(index=index, delta=schemas.ChatDelta(
                role="assistant", content=""))])}
        async for delta in stream:
            if delta.text or delta.logprobs:
                yield {"data": chunk([schemas.ChatChunkChoice(
                    index=delta.index, delta=schemas.ChatDelta(content=delta.text),
                    logprobs=_chat_logprobs(delta.logprobs))])}
            if delta.finish_reason is not None:
                yield {"data": chunk([schemas.ChatChunkChoice(index=delta.index, delta=schemas.ChatDelta(),
                                                              finish_reason=delta.finish_reason)])}
        if include_usage:
            yield {"data": chunk([], schemas.Usage(**vars(stream.usage)))}
        yield {"data": "[DONE]"}
    except ServeError as error:
        log.error("%s: stream failed: %s", stream.id, error)
        yield {"data": json.dumps(error.to_openai())}
    finally:
        await stream.aclose()


async def _completion_events(stream: Stream, body: schemas.CompletionRequest):
    """Yield the SSE data of a completion stream: text pieces, finish, usage if asked, [DONE]."""
    include_usage = body.stream_options is not None and body.stream_options.include_usage
    exclude = None if include_usage else {"usage"}

    def chunk(choices, usage=None) -> str:
        message = schemas.CompletionResponse(id=stream.id, created=stream.created, model=stream.model,
                                             choices=choices, usage=usage)
        return message.model_dump_json(exclude=exclude)

    try:
        async for delta in stream:
            if delta.text or delta.logprobs:
                yield {"data": chunk([schemas.CompletionChoice(
                    index=delta.index, text=delta.text, logprobs=_completion_logprobs(delta.logprobs))])}
            if delta.finish_reason is not None:
                yield {"data": chunk([schemas.CompletionChoice(index=delta.index, text="",
                                                               finish_reason=delta.finish_reason)])}
        if include_usage:
            yield {"data": chunk([], schemas.Usage(**vars(stream.usage)))}
        yield {"data": "[DONE]"}
    except ServeError as error:
        log.error("%s: stream failed: %s", stream.id, error)
        yield {"data": json.dumps(error.to_openai())}
    finally:
        await stream.aclose()


# -- logprobs in the two OpenAI layouts --------------------------------------------------------

def _completion_logprobs(entries: list[TokenLogprob] | None) -> schemas.CompletionLogprobs | None:
    if entries is None:
        return None
    return schemas.CompletionLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[None if e.logprob is None else {text: lp for text, _, lp in e.top} for e in entries],
        text_offset=[e.offset for e in entries])


def _chat_logprobs(entries: list[TokenLogprob] | None) -> schemas.ChatLogprobs | None:
    if entries is None:
        return None
    return schemas.ChatLogprobs(content=[
        schemas.ChatTokenLogprob(
            token=e.token, logprob=e.logprob, bytes=list(e.bytes),
            top_logprobs=[schemas.TopLogprob(token=text, logprob=lp, bytes=list(text.encode()))
                          for text, _, lp in e.top])
        for e in entries])


# -- errors -----------------------------------------------------------------------------------

def _error_response(error: ServeError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after)} if hasattr(error, "retry_after") else None
    return JSONResponse(error.to_openai(), status_code=error.status_code, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError) -> JSONResponse:
        log.info("rejected %s %s: %d %s (param %s)", request.method, request.url.path,
                 error.status_code, error.message, error.param)
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return await serve_error(request, _invalid_request(error))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            message, code = (f"No route {request.url.path}; the API serves {', '.join(sorted(_ROUTES))}.",
                             "not_found")
        elif error.status_code == 413:
            message, code = str(error.detail), PayloadTooLarge.code
        elif error.status_code == 405:
            message, code = (f"Method {request.method} is not allowed on {request.url.path}.",
                             "method_not_allowed")
        else:
            message, code = str(error.detail), None
        wrapped = ServeError(message, code=code)
        wrapped.status_code = error.status_code
        log.info("rejected %s %s: %d %s", request.method, request.url.path, error.status_code, message)
        return _error_response(wrapped)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _error_response(EngineFailure(f"internal error: {type(error).__name__}"))


_UNION_MEMBERS = {"str", "int", "list[str]", "list[int]", "list[list[int]]", "list[TextPart]", "none"}


def _invalid_request(error: RequestValidationError) -> InvalidRequest:
    """Turn FastAPI's validation errors into one OpenAI-style 400 naming the first bad field."""
    errors = error.errors()
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", first["msg"])
        return InvalidRequest(f"The request body is not valid JSON: {reason}. Send a JSON object "
                              "with Content-Type: application/json.", code="invalid_json")

    def split_location(details) -> tuple[list[str], str | None]:
        # A union adds the member it tried to the location (``prompt.list[int].0``); return the
        # field path before that member, and the member.
        path = [str(p) for p in details.get("loc", ()) if p != "body"]
        for i, part in enumerate(path):
            if part in _UNION_MEMBERS:
                return path[:i], part
        return path, None

    location, _ = split_location(first)
    param = ".".join(location) or None
    message = first["msg"].removeprefix("Value error, ")
    if first.get("type") == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    if first.get("type") == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}", param=param)
    if first.get("type") == "model_attributes_type" and not location:
        return InvalidRequest("The request body must be a JSON object.")
    if param is None:
        return InvalidRequest(f"Invalid request: {message}.")

    forms = []
    for details in errors:
        path, member = split_location(details)
        if path == location and member is not None and member not in forms:
            forms.append(member)
    if len(forms) > 1:
        return InvalidRequest(f"Invalid value for '{param}': it matches none of the accepted forms "
                              f"({', '.join(forms)}).", param=param)
    return InvalidRequest(f"Invalid value for '{param}': {message}.", param=param)


# -- middleware (plain ASGI, so streamed responses pass through untouched) ---------------------

class _BodySizeLimit:
    """Reject request bodies larger than ``max_bytes`` with a 413, whether or not they declare a length."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = PayloadTooLarge(f"The request body is larger than {self.max_bytes} bytes; "
                                    "send a shorter prompt or fewer inputs.")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _error_response(too_large)(scope, receive, send)

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI turns errors while reading a body into a 400 but passes HTTPException
                    # through, so the 413 travels as one and is reshaped by the error handler.
                    raise StarletteHTTPException(413, detail=too_large.message)
            return message

        await self.app(scope, limited_receive, send)


class _ResponseCounter:
    """Count responses by route and status for /metrics."""

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        # Unknown paths share one label, so a scan of random URLs cannot grow the metrics.
        route = scope["path"] if scope["path"] in _ROUTES else "other"

        async def counting_send(message):
            if message["type"] == "http.response.start":
                self.metrics.http_response(route, message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)
