"""Every setting of the server in one object, printed once at start-up.

>>> settings = ServeSettings(port=8123, models={"smollm2": "smollm2"})
>>> settings.host, settings.n_parallel, settings.n_ctx
('127.0.0.1', 8, 2048)
>>> "api_key: not set" in settings.describe()
True
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from labkit.models import DEFAULT_THREADS

DEFAULT_MODELS = {"smollm2": "smollm2", "gemma3-270m": "gemma3-270m"}


class ServeSettings(BaseModel):
    """Settings of ``labkit serve`` and of :class:`labkit.serve.engine.Engine`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="address to bind; 127.0.0.1 keeps the server local")
    port: int = Field(8000, ge=0, le=65535, description="TCP port; 0 picks a free one")
    models: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODELS),
                                   description="served model id -> course alias or GGUF path")
    embedding_models: list[str] = Field(default_factory=lambda: ["smollm2"],
                                        description="served model ids that also serve /v1/embeddings")
    n_parallel: int = Field(8, ge=1, le=64, description="sequences decoded together, per model")
    n_ctx: int = Field(2048, ge=64, description="context of each sequence, in tokens")
    n_batch: int = Field(512, ge=32, description="tokens per llama_decode call (prompt chunks + decodes)")
    n_threads: int = Field(DEFAULT_THREADS, ge=1, description="CPU threads llama.cpp uses per model")
    max_queue: int = Field(32, ge=0, description="sequences that may wait for a free slot before 429")
    max_n: int = Field(8, ge=1, description="largest n (choices per request) accepted")
    default_max_tokens: int = Field(512, ge=1, description="max_tokens when a request omits it")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body accepted")
    api_key: SecretStr | None = Field(None, description="when set, /v1 routes need 'Authorization: Bearer KEY'")

    @field_validator("embedding_models")
    @classmethod
    def _embedding_models_are_served(cls, value: list[str], info) -> list[str]:
        served = info.data.get("models", {})
        unknown = [m for m in value if m not in served]
        if unknown:
            raise ValueError(f"embedding model(s) {', '.join(unknown)} are not among the served "
                             f"models ({', '.join(served)})")
        return value

    def describe(self) -> str:
        """Return the settings as ``name: value`` lines, the API key masked."""
        lines = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "api_key":
                value = "set" if value is not None else "not set"
            lines.append(f"{name}: {value}")
        return "\n".join(lines)
