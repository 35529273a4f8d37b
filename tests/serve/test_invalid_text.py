"""Text that JSON can carry but Unicode cannot: an escaped lone surrogate gets a 400, not a 500."""

import httpx
import pytest

# Raw JSON bytes, because httpx encodes a json= body as UTF-8, which cannot carry a lone surrogate.
BODIES = {
    "chat": ("/v1/chat/completions",
             b'{"model": "smollm2", "max_tokens": 2, "messages": [{"role": "user", "content": "hi \\ud800"}]}'),
    "completion": ("/v1/completions", b'{"model": "gemma3-270m", "max_tokens": 2, "prompt": "\\udfff x"}'),
    "embedding": ("/v1/embeddings", b'{"model": "smollm2", "input": "\\ud800"}'),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BODIES))
def test_lone_surrogate_rejected(server, case):
    path, body = BODIES[case]
    response = httpx.post(server.base_url + path, content=body,
                          headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "surrogate" in error["message"]
