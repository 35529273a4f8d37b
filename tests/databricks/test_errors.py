"""Databricks-shaped errors: the SDK and openai raise their real exception types."""

import httpx
import openai
import pytest
from databricks.sdk.errors import (BadRequest, InvalidParameterValue, NotFound, PermissionDenied,
                                   ResourceDoesNotExist, TemporarilyUnavailable, Unauthenticated)
from databricks.sdk.service.serving import (ChatMessage, ChatMessageRole, EndpointCoreConfigInput,
                                            ServedEntityInput)

pytestmark = pytest.mark.slow

LLAMA = "databricks-meta-llama-3-3-70b-instruct"


def user(text):
    return [ChatMessage(role=ChatMessageRole.USER, content=text)]


def test_well_known_needs_no_token(server):
    response = httpx.get(f"{server.host}/.well-known/databricks-config")
    assert response.status_code == 200
    assert response.json()["workspace_id"]


def test_missing_token_is_unauthenticated(server):
    response = httpx.get(f"{server.host}/api/2.0/serving-endpoints")
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"


def test_wrong_token_is_permission_denied(server, connect):
    with pytest.raises(PermissionDenied, match="Invalid access token"):
        connect(server.host, token="dapi-wrong").serving_endpoints.list()


def test_sdk_unauthenticated_type(server):
    # The SDK always sends a token, so send a request without one through its own error parser.
    from databricks.sdk.errors.parser import _Parser
    import requests

    response = requests.get(f"{server.host}/api/2.0/serving-endpoints")
    assert isinstance(_Parser().get_api_error(response), Unauthenticated)


def test_unknown_endpoint(workspace):
    with pytest.raises(ResourceDoesNotExist, match="'nope' does not exist"):
        workspace.serving_endpoints.get("nope")
    with pytest.raises(ResourceDoesNotExist):
        workspace.serving_endpoints.query("nope", messages=user("Hi"))


def test_unknown_route(server):
    response = httpx.get(f"{server.host}/api/2.0/clusters/list",
                         headers={"Authorization": "Bearer dapi-test-main"})
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


@pytest.mark.parametrize("body, code", [
    (b"", "MALFORMED_REQUEST"),
    (b"{not json", "MALFORMED_REQUEST"),
    (b"[1, 2]", "MALFORMED_REQUEST"),
    (b'{"messages": "Hi"}', "INVALID_PARAMETER_VALUE"),
    (b'{"messages": [{"role": "robot", "content": "Hi"}]}', "INVALID_PARAMETER_VALUE"),
    (b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": -5}', "INVALID_PARAMETER_VALUE"),
    (b'{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100000000000}', "INVALID_PARAMETER_VALUE"),
    (b'{"messages": [{"role": "user", "content": "Hi"}], "temperature": 7}', "INVALID_PARAMETER_VALUE"),
    (b'{"messages": [{"role": "user", "content": "Hi"}], "max_token": 5}', "INVALID_PARAMETER_VALUE"),
])
def test_malformed_bodies(server, body, code):
    response = httpx.post(f"{server.host}/serving-endpoints/{LLAMA}/invocations", content=body,
                          headers={"Authorization": "Bearer dapi-test-main",
                                   "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error_code"] == code


def test_bad_parameters_through_sdk(workspace):
    with pytest.raises(InvalidParameterValue, match="max_tokens"):
        workspace.serving_endpoints.query(LLAMA, messages=user("Hi"), max_tokens=-1)
    with pytest.raises(InvalidParameterValue, match="maximum context length"):
        workspace.serving_endpoints.query(LLAMA, messages=user("Hi"), max_tokens=50_000)
    with pytest.raises(BadRequest):
        workspace.serving_endpoints.query(LLAMA, messages=user("Hi"), n=9)


def test_wrong_task_for_endpoint(workspace):
    with pytest.raises(InvalidParameterValue, match="expects 'messages'; 'prompt'"):
        workspace.serving_endpoints.query(LLAMA, prompt="Once upon a time")
    with pytest.raises(InvalidParameterValue, match="expects 'input'"):
        workspace.serving_endpoints.query("databricks-gte-large-en", messages=user("Hi"))


def test_endpoint_not_ready_is_temporarily_unavailable(start_server, connect):
    server = start_server(deploy_seconds=30)
    workspace = connect(server.host, retry_timeout_seconds=1)
    workspace.serving_endpoints.create("chat", config=EndpointCoreConfigInput(
        name="chat", served_entities=[ServedEntityInput(entity_name="smollm2")]))
    # The SDK retries a 503 until its retry timeout, then raises TimeoutError from the real error.
    with pytest.raises(TimeoutError) as caught:
        workspace.serving_endpoints.query("chat", messages=user("Hi"))
    assert isinstance(caught.value.__cause__, TemporarilyUnavailable)


def test_openai_error_types(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=-1)
    with pytest.raises(openai.BadRequestError, match="'model' is required"):
        openai_client.chat.completions.create(model="", messages=[{"role": "user", "content": "Hi"}])


def test_openai_wrong_token(server):
    client = openai.OpenAI(base_url=f"{server.host}/serving-endpoints", api_key="dapi-wrong", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "Hi"}])


def test_not_found_is_a_not_found(workspace):
    with pytest.raises(NotFound):
        workspace.serving_endpoints.delete("nope")


def test_oversized_body_rejected(server):
    body = b'{"messages": [{"role": "user", "content": "' + b"a" * (17 * 1024 * 1024) + b'"}]}'
    response = httpx.post(f"{server.host}/serving-endpoints/{LLAMA}/invocations", content=body, timeout=60,
                          headers={"Authorization": "Bearer dapi-test-main", "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "accepts at most 16,777,216" in response.json()["message"]
