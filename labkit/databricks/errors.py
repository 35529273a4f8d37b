"""Errors in the shape Databricks sends them, so the SDK raises its real exception types.

The Databricks REST API rejects a failed request with a status code and a JSON body
``{"error_code": "...", "message": "..."}``. ``databricks-sdk`` picks the exception class from
``error_code`` first and from the status code second (``databricks.sdk.errors.platform``), and it
retries 429 and 503 responses after the number of seconds in ``Retry-After``.

>>> error = resource_does_not_exist("my-endpoint")
>>> error.status, error.body()["error_code"]
(404, 'RESOURCE_DOES_NOT_EXIST')
"""

from __future__ import annotations

import math


class DatabricksError(Exception):
    """A request failed: the HTTP status, the Databricks ``error_code`` and a message for the caller."""

    def __init__(self, status: int, error_code: str, message: str, *,
                 retry_after_seconds: float | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.retry_after_seconds = retry_after_seconds

    def body(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}

    def headers(self) -> dict[str, str]:
        if self.retry_after_seconds is None:
            return {}
        # The SDK parses Retry-After only as an integer, so round up to whole seconds.
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_seconds)))}


# The SDK maps each of these error codes to an exception class; the comment names the class.

def unauthenticated() -> DatabricksError:
    """Return the error for a request without credentials (SDK: ``Unauthenticated``, from status 401)."""
    return DatabricksError(401, "UNAUTHENTICATED",
                           "Credential was not sent or was of an unsupported type for this API. "
                           "Send the header 'Authorization: Bearer <personal access token>'.")


def invalid_token() -> DatabricksError:
    """Return the error for a token the workspace did not issue (SDK: ``PermissionDenied``, status 403)."""
    return DatabricksError(403, "PERMISSION_DENIED",
                           "Invalid access token. Check DATABRICKS_TOKEN or the token passed to "
                           "WorkspaceClient.")


def permission_denied(message: str) -> DatabricksError:
    """Return the error for an action the caller may not take (SDK: ``PermissionDenied``)."""
    return DatabricksError(403, "PERMISSION_DENIED", message)


def resource_does_not_exist(name: str) -> DatabricksError:
    """Return the error for an unknown endpoint name (SDK: ``ResourceDoesNotExist``, a ``NotFound``)."""
    return DatabricksError(404, "RESOURCE_DOES_NOT_EXIST",
                           f"Endpoint with name '{name}' does not exist. List the endpoints with "
                           "GET /api/2.0/serving-endpoints (w.serving_endpoints.list()).")


def resource_already_exists(name: str) -> DatabricksError:
    """Return the error for an endpoint name in use (SDK: ``ResourceAlreadyExists``)."""
    return DatabricksError(409, "RESOURCE_ALREADY_EXISTS",
                           f"Endpoint with name '{name}' already exists. Pick another name or update "
                           "the existing endpoint's config.")


def resource_conflict(message: str) -> DatabricksError:
    """Return the error for a change the endpoint's state forbids (SDK: ``ResourceConflict``, status 409)."""
    return DatabricksError(409, "RESOURCE_CONFLICT", message)


def invalid_parameter(message: str) -> DatabricksError:
    """Return the error for a field of invalid type or value (SDK: ``InvalidParameterValue``, a ``BadRequest``)."""
    return DatabricksError(400, "INVALID_PARAMETER_VALUE", message)


def malformed_request(message: str) -> DatabricksError:
    """Return the error for a body that is not a JSON object (SDK: ``BadRequest``, from status 400)."""
    return DatabricksError(400, "MALFORMED_REQUEST", message)


def request_limit_exceeded(message: str, retry_after_seconds: float) -> DatabricksError:
    """Return the error for an exhausted rate limit (SDK: ``RequestLimitExceeded``, a ``TooManyRequests``)."""
    return DatabricksError(429, "REQUEST_LIMIT_EXCEEDED", message,
                           retry_after_seconds=retry_after_seconds)


def temporarily_unavailable(message: str, retry_after_seconds: float = 1) -> DatabricksError:
    """Return the error for an endpoint that cannot serve yet, for example while it deploys (SDK: ``TemporarilyUnavailable``)."""
    return DatabricksError(503, "TEMPORARILY_UNAVAILABLE", message,
                           retry_after_seconds=retry_after_seconds)


def route_not_found(method: str, path: str) -> DatabricksError:
    """Return the error for a method and path with no API (SDK: ``NotFound``, from status 404)."""
    return DatabricksError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'.")


def internal_error(message: str) -> DatabricksError:
    """Return the error for a failure inside the stand-in (SDK: ``InternalError``, from status 500)."""
    return DatabricksError(500, "INTERNAL_ERROR", message)
