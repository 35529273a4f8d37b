"""Request bodies of the serving-endpoints API as typed models.

Every body is checked here before anything runs. A wrong field becomes one
``INVALID_PARAMETER_VALUE`` error that names the field, its value and the rule, which the SDK raises
as ``InvalidParameterValue``. Unknown fields are rejected too, because a misspelt field that is
silently ignored (``max_token``) is harder to find than an error.

>>> parse(ChatRequest, {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}).max_tokens
4
>>> parse(ChatRequest, {"messages": [], "max_tokens": 4})
Traceback (most recent call last):
...
labkit.databricks.errors.DatabricksError: Invalid value for 'messages': List should have at least 1 item after validation, not 0
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labkit.databricks.errors import invalid_parameter

# Largest max_tokens the stand-in accepts before it looks at the model. The model's own context
# window, checked when the request runs, is usually the tighter limit.
MAX_TOKENS_LIMIT = 1 << 20


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


# -- querying ------------------------------------------------------------------------------------

class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str


class _Sampling(_Body):
    """Fields shared by chat and completions requests (OpenAI names and ranges)."""

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=5)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict | None = None
    seed: int | None = None
    user: str | None = None
    # Fields the SDK's query() may send; the stand-in accepts them and has no use for them.
    extra_params: dict[str, str] | None = None
    client_request_id: str | None = None
    usage_context: dict[str, str] | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(_Sampling):
    prompt: str | list[str]

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class EmbeddingRequest(_Body):
    model: str | None = None
    input: str | list[str] = Field(min_length=1)
    # openai's client requests base64 by default; Databricks' own clients send nothing.
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    extra_params: dict[str, str] | None = None
    client_request_id: str | None = None
    usage_context: dict[str, str] | None = None

    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


# The body field that marks each task, so that a body sent to the wrong kind of endpoint gets a clear error.
TASK_FIELDS = {"messages": "llm/v1/chat", "prompt": "llm/v1/completions", "input": "llm/v1/embeddings"}


# -- managing endpoints --------------------------------------------------------------------------

class EndpointTag(_Body):
    key: str = Field(min_length=1)
    value: str | None = None


class ServedEntityInput(_Body):
    entity_name: str | None = None
    entity_version: str | None = None
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,63}$")
    workload_size: str | None = None
    workload_type: str | None = None
    scale_to_zero_enabled: bool | None = None
    environment_vars: dict[str, str] | None = None
    external_model: dict | None = None
    min_provisioned_throughput: int | None = Field(default=None, ge=0)
    max_provisioned_throughput: int | None = Field(default=None, ge=0)
    provisioned_model_units: int | None = Field(default=None, ge=0)


class Route(_Body):
    served_entity_name: str | None = None
    served_model_name: str | None = None
    traffic_percentage: int = Field(ge=0, le=100)


class TrafficConfig(_Body):
    routes: list[Route] = Field(default_factory=list)


class EndpointConfigInput(_Body):
    """The body of ``PUT .../config`` and the ``config`` of a create request."""

    name: str | None = None
    served_entities: list[ServedEntityInput] | None = None
    served_models: list[dict] | None = None
    traffic_config: TrafficConfig | None = None
    auto_capture_config: dict | None = None


class AiGatewayRateLimit(_Body):
    renewal_period: Literal["minute"]
    calls: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    key: Literal["endpoint", "user", "user_group", "service_principal"] = "endpoint"
    principal: str | None = None


class UsageTrackingConfig(_Body):
    enabled: bool = False


class AiGatewayConfig(_Body):
    """The body of ``PUT .../ai-gateway`` and the ``ai_gateway`` of a create request."""

    rate_limits: list[AiGatewayRateLimit] | None = None
    usage_tracking_config: UsageTrackingConfig | None = None
    guardrails: dict | None = None
    inference_table_config: dict | None = None
    fallback_config: dict | None = None


class LegacyRateLimit(_Body):
    """The deprecated top-level ``rate_limits`` of a create request (calls only)."""

    calls: int = Field(ge=0)
    renewal_period: Literal["minute"]
    key: Literal["endpoint", "user"] = "endpoint"


class CreateEndpointRequest(_Body):
    name: str
    config: EndpointConfigInput | None = None
    ai_gateway: AiGatewayConfig | None = None
    rate_limits: list[LegacyRateLimit] | None = None
    tags: list[EndpointTag] | None = None
    description: str | None = None
    route_optimized: bool | None = None
    budget_policy_id: str | None = None
    email_notifications: dict | None = None
    telemetry_config: dict | None = None


Model = TypeVar("Model", bound=BaseModel)
_UNION_MEMBERS = {"str", "int", "float", "bool", "dict", "list"}


def parse(model: type[Model], body: object) -> Model:
    """Validate a decoded JSON body, or raise ``INVALID_PARAMETER_VALUE`` naming the first problem."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        # A union adds the member type to the location ('prompt.str'); readers want the field.
        parts = [str(p) for p in first["loc"] if str(p) not in _UNION_MEMBERS and "[" not in str(p)]
        where = ".".join(parts) or "body"
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown field; check its spelling against the API reference"
        raise invalid_parameter(f"Invalid value for '{where}': {message}") from None
