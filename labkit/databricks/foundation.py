"""The models the stand-in serves, and the local model that generates the replies of each.

Databricks names its pay-per-token endpoints after the model (``databricks-meta-llama-3-3-70b-instruct``).
The stand-in lists the same names so that notebooks written for a workspace run unchanged, but every
reply comes from one of the course's small local models, and the endpoint says so: in its config
(``served_entities[].foundation_model.description``), in the ``served-model-name`` response header
and in the ``model`` field of every response.

>>> PAY_PER_TOKEN["databricks-meta-llama-3-3-70b-instruct"].local_model
'smollm2'
>>> LOCAL_MODELS["gemma3-270m"].task
'llm/v1/completions'
"""

from __future__ import annotations

from dataclasses import dataclass

CHAT = "llm/v1/chat"
COMPLETIONS = "llm/v1/completions"
EMBEDDINGS = "llm/v1/embeddings"
TASKS = (CHAT, COMPLETIONS, EMBEDDINGS)


@dataclass(frozen=True)
class LocalModel:
    """A course model that can back an endpoint: its alias in ``labkit.assets`` and what it does."""

    alias: str
    title: str
    task: str


@dataclass(frozen=True)
class PayPerTokenModel:
    """A Databricks pay-per-token endpoint and the local model that serves in its place."""

    endpoint_name: str
    display_name: str
    task: str
    local_model: str

    def description(self) -> str:
        title = LOCAL_MODELS[self.local_model].title
        return (f"Local stand-in: {title} generates the replies, not {self.display_name}. "
                "Usage counts the tokens that local model processed.")


# SmolLM2 is the only course model with a chat template, so it serves every chat endpoint and
# computes the embeddings (mean of its last hidden states). Gemma 3 270M is a base model, so it
# serves completions only.
LOCAL_MODELS: dict[str, LocalModel] = {
    m.alias: m for m in [
        LocalModel("smollm2", "SmolLM2-135M-Instruct (Q4_1 GGUF)", CHAT),
        LocalModel("gemma3-270m", "Gemma 3 270M base (Q4_K_M GGUF)", COMPLETIONS),
    ]
}

# Local model that computes embeddings for embedding endpoints.
EMBEDDING_MODEL = "smollm2"

PAY_PER_TOKEN: dict[str, PayPerTokenModel] = {
    m.endpoint_name: m for m in [
        PayPerTokenModel("databricks-meta-llama-3-3-70b-instruct", "Meta Llama 3.3 70B Instruct",
                         CHAT, "smollm2"),
        PayPerTokenModel("databricks-meta-llama-3-1-8b-instruct", "Meta Llama 3.1 8B Instruct",
                         CHAT, "smollm2"),
        PayPerTokenModel("databricks-llama-4-maverick", "Llama 4 Maverick", CHAT, "smollm2"),
        PayPerTokenModel("databricks-gpt-oss-120b", "gpt-oss-120b", CHAT, "smollm2"),
        PayPerTokenModel("databricks-gpt-oss-20b", "gpt-oss-20b", CHAT, "smollm2"),
        PayPerTokenModel("databricks-gemma-3-12b", "Gemma 3 12B", CHAT, "smollm2"),
        PayPerTokenModel("databricks-gte-large-en", "GTE Large (English)", EMBEDDINGS,
                         EMBEDDING_MODEL),
        PayPerTokenModel("databricks-bge-large-en", "BGE Large (English)", EMBEDDINGS,
                         EMBEDDING_MODEL),
    ]
}


def local_model_for_entity(entity_name: str) -> LocalModel:
    """Return the local model a served entity names, or raise ``KeyError`` listing the known names."""
    try:
        return LOCAL_MODELS[entity_name]
    except KeyError:
        raise KeyError(f"unknown entity_name {entity_name!r}; the stand-in serves the local models "
                       f"{', '.join(LOCAL_MODELS)}") from None
