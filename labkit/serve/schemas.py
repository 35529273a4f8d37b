"""Typed request and response bodies of the OpenAI-compatible HTTP API.

Requests are strict: a field of the wrong JSON type (``"temperature": "hot"``, ``"max_tokens":
"10"``) or an unknown field is a 400, as in the OpenAI API, instead of a guess. Defaults that are
None here mean "the engine's default" (see :mod:`labkit.serve.sampling`), so both endpoints share
one set.

>>> request = ChatCompletionRequest.model_validate_json(
...     '{"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}')
>>> request.max_tokens, request.temperature, request.stream
(5, None, False)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from labkit.serve.sampling import LOGIT_BIAS_LIMIT, PENALTY_LIMIT, TEMPERATURE_MAX, TOP_LOGPROBS_MAX

# The OpenAI API lists at most 5 alternatives per token in /v1/completions.
COMPLETION_LOGPROBS_MAX = 5


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    """Options of a streamed response."""

    include_usage: bool = Field(False, description="send one extra chunk with usage before [DONE]")


class _GenerationFields(_Strict):
    """Parameters both endpoints accept, with the same meaning and the same defaults."""

    model: str = Field(description="id of a served model, see GET /v1/models")
    max_tokens: int | None = Field(None, ge=0, description="tokens to generate at most; default: "
                                   "the room left in the context, capped by the server setting")
    temperature: float | None = Field(None, ge=0, le=TEMPERATURE_MAX, description="default 1.0; 0 is greedy")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus mass, default 1.0 (off)")
    top_k: int | None = Field(None, ge=0, description="keep the k likeliest tokens, default 0 (off); "
                              "not an OpenAI field (send it through extra_body)")
    n: int | None = Field(None, ge=1, description="choices per prompt, default 1")
    stream: bool = Field(False, description="send server-sent events instead of one body")
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(None, description="up to 4 strings that end the text; "
                                         "they are not included")
    seed: int | None = Field(None, description="same seed and request give the same output")
    presence_penalty: float | None = Field(None, ge=-PENALTY_LIMIT, le=PENALTY_LIMIT, description="default 0")
    frequency_penalty: float | None = Field(None, ge=-PENALTY_LIMIT, le=PENALTY_LIMIT, description="default 0")
    logit_bias: dict[str, float] | None = Field(None, description=f"token id -> bias in "
                                                f"[-{LOGIT_BIAS_LIMIT:g}, {LOGIT_BIAS_LIMIT:g}]")
    user: str | None = Field(None, description="accepted and ignored")

    @model_validator(mode="after")
    def _stream_options_need_stream(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self


class CompletionRequest(_GenerationFields):
    """Body of ``POST /v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="text, token ids, or a list of either (one set of choices per prompt)")
    logprobs: int | None = Field(None, ge=0, le=COMPLETION_LOGPROBS_MAX,
                                 description="list this many alternatives per token with its logprob")
    echo: bool = Field(False, description="put the prompt before the completion")
    suffix: None = Field(None, description="not supported; must be absent or null")
    best_of: int | None = Field(None, ge=1, description="only 1 or equal to n is supported")

    @model_validator(mode="after")
    def _best_of_equals_n(self):
        if self.best_of is not None and self.best_of != (self.n or 1):
            raise ValueError("best_of other than n is not supported")
        return self


class TextPart(_Strict):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    """One message of a conversation."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class ResponseFormat(_Strict):
    """Only plain text is produced."""

    type: Literal["text"]


class ChatCompletionRequest(_GenerationFields):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="newer name of max_tokens")
    logprobs: bool = Field(False, description="return the logprob of each generated token")
    top_logprobs: int | None = Field(None, ge=0, le=TOP_LOGPROBS_MAX,
                                     description="alternatives per token; needs logprobs true")
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _consistent_fields(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs set to true")
        if (self.max_tokens is not None and self.max_completion_tokens is not None
                and self.max_tokens != self.max_completion_tokens):
            raise ValueError("max_tokens and max_completion_tokens disagree; send one of them")
        return self


class EmbeddingRequest(_Strict):
    """Body of ``POST /v1/embeddings``."""

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="must be absent or the model's size")
    user: str | None = None


# -- responses ---------------------------------------------------------------------------------

class Usage(BaseModel):
    """Token counts; in a stream, sent once in its own chunk when asked."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(BaseModel):
    """Per-token logprobs of a completion choice (the legacy OpenAI layout)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class CompletionResponse(BaseModel):
    """Body of a completion, or of one streamed chunk (then ``usage`` is None or absent)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class ChatTokenLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[ChatTokenLogprob]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletionResponse(BaseModel):
    """Body of a chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    """The new part of a message; unset fields are left out, so the finishing chunk has ``{}``."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler):
        return {key: value for key, value in handler(self).items() if value is not None}


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "labkit"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: list[str]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The OpenAI error shape of every 4xx and 5xx response."""

    error: ErrorBody
