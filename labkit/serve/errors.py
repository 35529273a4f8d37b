"""Errors a client can cause, each with the HTTP status and OpenAI error fields it maps to.

The engine raises these before any token is generated, so an HTTP layer can respond with a 4xx
status and the OpenAI error shape instead of a half-started stream:

>>> error = ModelNotFound("llama-70b", ["smollm2"])
>>> error.status_code, error.code
(404, 'model_not_found')
>>> error.to_openai()["error"]["message"]
"The model 'llama-70b' does not exist. Served models: smollm2."
"""

from __future__ import annotations


class ServeError(Exception):
    """A request the server cannot serve as sent; ``status_code`` is the fitting HTTP status.

    ``type`` and ``code`` follow the OpenAI API's error object, ``param`` names the request field
    at fault (None when no single field is).
    """

    status_code = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_openai(self) -> dict:
        """Return the body OpenAI sends for an error: ``{"error": {message, type, param, code}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class InvalidRequest(ServeError):
    """A field has a value the server cannot honour (400)."""


class ContextLengthExceeded(InvalidRequest):
    """The prompt plus ``max_tokens`` does not fit into one sequence's context (400)."""

    code = "context_length_exceeded"


class ModelNotFound(ServeError):
    """The request names a model that this server does not serve (404)."""

    status_code = 404
    code = "model_not_found"

    def __init__(self, model: str, served: list[str]):
        super().__init__(f"The model {model!r} does not exist. Served models: {', '.join(served)}.",
                         param="model")
        self.model = model


class AuthenticationFailed(ServeError):
    """The API key is missing or wrong (401)."""

    status_code = 401
    code = "invalid_api_key"


class QueueFull(ServeError):
    """Too many requests are waiting for a sequence slot (429); retry after ``retry_after`` seconds."""

    status_code = 429
    type = "rate_limit_error"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ServeError):
    """The request body is larger than the server accepts (413)."""

    status_code = 413
    code = "request_too_large"


class EngineFailure(ServeError):
    """llama.cpp failed while decoding; the server, not the request, is at fault (500)."""

    status_code = 500
    type = "server_error"
    code = "decode_failed"
