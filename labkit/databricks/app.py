"""The HTTP side of the stand-in: the serving-endpoints REST routes on FastAPI.

Routes (all but the first need ``Authorization: Bearer <token>``):

- ``GET  /.well-known/databricks-config``: what the SDK probes when a client is created
- ``GET|POST /api/2.0/serving-endpoints``: list, create
- ``GET|DELETE /api/2.0/serving-endpoints/{name}``: get, delete
- ``PUT  /api/2.0/serving-endpoints/{name}/config``: update the served entities and traffic
- ``PUT  /api/2.0/serving-endpoints/{name}/ai-gateway``: rate limits and usage tracking
- ``POST /serving-endpoints/{name}/invocations``: chat, completions or embeddings, by the endpoint's task
- ``POST /serving-endpoints/chat/completions``, ``/completions``, ``/embeddings``: the
  OpenAI-compatible routes (the endpoint name travels as ``model``)

Every failure is a :class:`~labkit.databricks.errors.DatabricksError` turned into Databricks' error
body, so ``databricks-sdk`` and ``openai`` raise their usual exception types.
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from labkit.databricks import errors, query
from labkit.databricks.backend import EngineBackend
from labkit.databricks.endpoints import EndpointService
from labkit.databricks.limits import RateLimiter
from labkit.databricks.schemas import (AiGatewayConfig, CreateEndpointRequest, EndpointConfigInput,
                                       parse)
from labkit.databricks.settings import WorkspaceSettings
from labkit.databricks.store import EndpointStore

log = logging.getLogger(__name__)


def create_app(settings: WorkspaceSettings, backend: EngineBackend, *,
               clock: Callable[[], float] | None = None) -> FastAPI:
    """Build the stand-in's app; ``clock`` (seconds) drives the rate limiter, for tests."""
    store = EndpointStore(settings.store_path)
    service = EndpointService(store, deploy_seconds=settings.deploy_seconds,
                              prepare=backend.prepare, usage_log=settings.usage_log_path)
    limiter = RateLimiter(clock) if clock is not None else RateLimiter()
    principals = settings.principals()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        log.info("workspace stand-in: %s", settings.describe())
        service.resume_deployments()
        yield
        service.cancel_deployments()

    app = FastAPI(title="labkit Databricks workspace stand-in", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.state.limiter = limiter

    # -- errors ------------------------------------------------------------------------------------

    @app.exception_handler(errors.DatabricksError)
    async def databricks_error(request: Request, error: errors.DatabricksError) -> JSONResponse:
        log.info("%s %s -> %d %s: %s", request.method, request.url.path, error.status,
                 error.error_code, error.message)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 405:
            failure = errors.DatabricksError(405, "ENDPOINT_NOT_FOUND",
                                             f"Method {request.method} is not allowed on "
                                             f"'{request.url.path}'.")
        else:
            failure = errors.route_not_found(request.method, request.url.path)
        return await databricks_error(request, failure)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return await databricks_error(request, errors.internal_error(
            f"The stand-in failed while handling the request: {type(error).__name__}: {error}"))

    # -- authentication ------------------------------------------------------------------------

    def authenticated_user(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthenticated()
        user = principals.get(token.strip())
        if user is None:
            raise errors.invalid_token()
        return user

    # -- discovery -----------------------------------------------------------------------------

    @app.get("/.well-known/databricks-config")
    async def well_known() -> dict:
        # Without this the SDK logs a warning on every client it creates; no auth, as on Databricks.
        return {"workspace_id": settings.workspace_id, "cloud": "aws"}

    # -- endpoints -----------------------------------------------------------------------------

    @app.get("/api/2.0/serving-endpoints")
    async def list_endpoints(user: str = Depends(authenticated_user)) -> dict:
        return {"endpoints": service.list()}

    @app.post("/api/2.0/serving-endpoints")
    async def create_endpoint(request: Request, user: str = Depends(authenticated_user)) -> dict:
        body = parse(CreateEndpointRequest, await json_body(request))
        return with_url(request, service.create(body, creator=user))

    @app.get("/api/2.0/serving-endpoints/{name}")
    async def get_endpoint(name: str, request: Request, user: str = Depends(authenticated_user)) -> dict:
        return with_url(request, service.get(name))

    @app.delete("/api/2.0/serving-endpoints/{name}")
    async def delete_endpoint(name: str, user: str = Depends(authenticated_user)) -> dict:
        service.delete(name)
        limiter.forget(name)
        return {}

    @app.put("/api/2.0/serving-endpoints/{name}/config")
    async def update_config(name: str, request: Request,
                            user: str = Depends(authenticated_user)) -> dict:
        body = parse(EndpointConfigInput, await json_body(request))
        return with_url(request, service.update_config(name, body, creator=user))

    @app.put("/api/2.0/serving-endpoints/{name}/ai-gateway")
    async def put_ai_gateway(name: str, request: Request,
                             user: str = Depends(authenticated_user)) -> dict:
        body = parse(AiGatewayConfig, await json_body(request))
        return service.put_ai_gateway(name, body)

    # -- querying ------------------------------------------------------------------------------

    async def run_query(name: str, body: dict, user: str) -> Response:
        target = service.target(name)
        request = query.parse_query(target, body)
        admission = limiter.admit(name, user, target.rate_limits)
        headers = {"served-model-name": target.served_entity}
        if getattr(request, "stream", False):
            stream = await query.open_stream(backend, target, request)

            async def events():
                async for event in stream.events():
                    yield event
                admission.record_tokens(stream.usage["total_tokens"])
                service.record_usage(target, user, stream.usage)
                log.info("%s streamed to %s by %s: %s", name, user, target.served_entity, stream.usage)

            return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

        response = await query.run(backend, target, request)
        admission.record_tokens(response["usage"]["total_tokens"])
        service.record_usage(target, user, response["usage"])
        log.info("%s served %s to %s by %s: %s", name, response["object"], user,
                 target.served_entity, response["usage"])
        return JSONResponse(response, headers=headers)

    @app.post("/serving-endpoints/{name}/invocations")
    async def invocations(name: str, request: Request, user: str = Depends(authenticated_user)):
        return await run_query(name, await json_body(request), user)

    async def openai_route(request: Request, user: str) -> Response:
        body = await json_body(request)
        name = body.pop("model", None)
        if not isinstance(name, str) or not name:
            raise errors.invalid_parameter(
                "'model' is required: the name of the serving endpoint, for example "
                "'databricks-meta-llama-3-3-70b-instruct'.")
        return await run_query(name, body, user)

    @app.post("/serving-endpoints/chat/completions")
    async def openai_chat(request: Request, user: str = Depends(authenticated_user)):
        return await openai_route(request, user)

    @app.post("/serving-endpoints/completions")
    async def openai_completions(request: Request, user: str = Depends(authenticated_user)):
        return await openai_route(request, user)

    @app.post("/serving-endpoints/embeddings")
    async def openai_embeddings(request: Request, user: str = Depends(authenticated_user)):
        return await openai_route(request, user)

    return app


# Largest request body the stand-in reads; a chat prompt that fills the local models' context is
# far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024


async def json_body(request: Request) -> dict:
    """Decode the body as a JSON object, or raise MALFORMED_REQUEST saying what is wrong."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise errors.invalid_parameter(
            f"The request body has {int(declared):,} bytes; the stand-in accepts at most "
            f"{MAX_BODY_BYTES:,}. Send a shorter prompt or fewer inputs.")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise errors.invalid_parameter(
            f"The request body has {len(raw):,} bytes; the stand-in accepts at most {MAX_BODY_BYTES:,}.")
    if not raw.strip():
        raise errors.malformed_request("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise errors.malformed_request(f"The request body is not valid JSON: {error}.") from None
    if not isinstance(body, dict):
        raise errors.malformed_request(
            f"The request body must be a JSON object, not {type(body).__name__}.")
    return body


def with_url(request: Request, view: dict) -> dict:
    """Add the endpoint's query URL, as Databricks does in detailed views."""
    base = str(request.base_url).rstrip("/")
    return {**view, "endpoint_url": f"{base}/serving-endpoints/{view['name']}/invocations"}
