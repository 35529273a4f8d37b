"""A live labkit server on 127.0.0.1 with the real SmolLM2 and Gemma models, shared by the serve tests."""

import pytest

from labkit.serve import serve_in_background


@pytest.fixture(scope="session")
def server():
    """Both course models, default settings, on a free port."""
    with serve_in_background() as running:
        yield running


@pytest.fixture(scope="session")
def client(server):
    return server.openai_client(max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def llama_tokenizers():
    """llama-cpp-python's own tokenizers (vocabulary only), an independent count of prompt tokens."""
    from llama_cpp import Llama

    from labkit import assets

    return {alias: Llama(model_path=str(assets.model_path(alias)), vocab_only=True, verbose=False)
            for alias in ("smollm2", "gemma3-270m")}
