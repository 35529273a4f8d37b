"""Serving-endpoint management through the unmodified databricks-sdk: list, get, create, update, delete."""

import datetime

import pytest
from databricks.sdk.errors import (InvalidParameterValue, PermissionDenied, ResourceAlreadyExists,
                                   ResourceConflict, ResourceDoesNotExist)
from databricks.sdk.service.serving import (AiGatewayRateLimit, AiGatewayRateLimitKey,
                                            AiGatewayRateLimitRenewalPeriod,
                                            AiGatewayUsageTrackingConfig, EndpointCoreConfigInput,
                                            EndpointStateConfigUpdate, EndpointStateReady, EndpointTag,
                                            Route, ServedEntityInput, TrafficConfig)

pytestmark = pytest.mark.slow

LLAMA = "databricks-meta-llama-3-3-70b-instruct"
TIMEOUT = datetime.timedelta(seconds=60)


def chat_config(name="chat", *entities):
    entities = entities or (ServedEntityInput(entity_name="smollm2", entity_version="1"),)
    return EndpointCoreConfigInput(name=name, served_entities=list(entities))


def test_list_has_pay_per_token_endpoints(workspace):
    endpoints = {e.name: e for e in workspace.serving_endpoints.list()}
    assert LLAMA in endpoints
    assert "databricks-gte-large-en" in endpoints
    assert endpoints[LLAMA].task == "llm/v1/chat"
    assert endpoints[LLAMA].state.ready == EndpointStateReady.READY


def test_pay_per_token_says_it_is_local(workspace):
    endpoint = workspace.serving_endpoints.get(LLAMA)
    entity = endpoint.config.served_entities[0]
    assert entity.name == "smollm2"
    assert entity.foundation_model.name == LLAMA
    assert "SmolLM2" in entity.foundation_model.description
    assert endpoint.endpoint_url.endswith(f"/serving-endpoints/{LLAMA}/invocations")


def test_create_waits_until_ready(workspace):
    waiter = workspace.serving_endpoints.create(
        "chat", config=chat_config(), tags=[EndpointTag(key="team", value="course")],
        description="created by a test")
    assert waiter.response.state.config_update == EndpointStateConfigUpdate.IN_PROGRESS
    assert waiter.response.state.ready == EndpointStateReady.NOT_READY
    assert waiter.response.pending_config.served_entities[0].entity_name == "smollm2"

    endpoint = waiter.result(timeout=TIMEOUT)
    assert endpoint.state.config_update == EndpointStateConfigUpdate.NOT_UPDATING
    assert endpoint.state.ready == EndpointStateReady.READY
    assert endpoint.task == "llm/v1/chat"
    assert endpoint.config.config_version == 1
    assert endpoint.config.served_entities[0].name == "smollm2-1"
    assert endpoint.config.traffic_config.routes[0].traffic_percentage == 100
    assert endpoint.tags[0].key == "team"
    assert endpoint.creator == "student@labkit.local"
    assert "chat" in [e.name for e in workspace.serving_endpoints.list()]


def test_update_config_deploys_new_version(workspace):
    workspace.serving_endpoints.create("chat", config=chat_config()).result(timeout=TIMEOUT)
    waiter = workspace.serving_endpoints.update_config(
        "chat",
        served_entities=[ServedEntityInput(entity_name="smollm2", entity_version="2", name="a"),
                         ServedEntityInput(entity_name="smollm2", entity_version="2", name="b")],
        traffic_config=TrafficConfig(routes=[Route(served_entity_name="a", traffic_percentage=100),
                                             Route(served_entity_name="b", traffic_percentage=0)]))
    assert waiter.response.state.config_update == EndpointStateConfigUpdate.IN_PROGRESS
    # While the update runs, the old config keeps serving.
    assert waiter.response.config.config_version == 1

    endpoint = waiter.result(timeout=TIMEOUT)
    assert endpoint.config.config_version == 2
    assert [e.name for e in endpoint.config.served_entities] == ["a", "b"]
    assert endpoint.pending_config is None


def test_update_during_update_conflicts(start_server, connect):
    server = start_server(deploy_seconds=30)
    workspace = connect(server.host)
    workspace.serving_endpoints.create("slow", config=chat_config("slow"))
    with pytest.raises(ResourceConflict, match="already has a config update in progress"):
        workspace.serving_endpoints.update_config("slow", served_entities=chat_config().served_entities)


def test_update_cannot_change_task(workspace):
    workspace.serving_endpoints.create("chat", config=chat_config()).result(timeout=TIMEOUT)
    with pytest.raises(InvalidParameterValue, match="Create a new endpoint"):
        workspace.serving_endpoints.update_config(
            "chat", served_entities=[ServedEntityInput(entity_name="gemma3-270m", entity_version="1")])


def test_ai_gateway_round_trip(workspace):
    response = workspace.serving_endpoints.put_ai_gateway(
        LLAMA,
        rate_limits=[AiGatewayRateLimit(calls=10, tokens=5000, key=AiGatewayRateLimitKey.USER,
                                        renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)],
        usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True))
    assert response.rate_limits[0].calls == 10
    assert response.rate_limits[0].tokens == 5000
    assert response.usage_tracking_config.enabled

    endpoint = workspace.serving_endpoints.get(LLAMA)
    assert endpoint.ai_gateway.rate_limits[0].key == AiGatewayRateLimitKey.USER


def test_delete_custom_endpoint(workspace):
    workspace.serving_endpoints.create("chat", config=chat_config()).result(timeout=TIMEOUT)
    workspace.serving_endpoints.delete("chat")
    with pytest.raises(ResourceDoesNotExist):
        workspace.serving_endpoints.get("chat")
    with pytest.raises(ResourceDoesNotExist):
        workspace.serving_endpoints.delete("chat")


def test_pay_per_token_cannot_be_deleted_or_changed(workspace):
    with pytest.raises(PermissionDenied, match="cannot be deleted"):
        workspace.serving_endpoints.delete(LLAMA)
    with pytest.raises(PermissionDenied, match="cannot be changed"):
        workspace.serving_endpoints.update_config(LLAMA, served_entities=chat_config().served_entities)


def test_create_duplicate_name(workspace):
    workspace.serving_endpoints.create("chat", config=chat_config())
    with pytest.raises(ResourceAlreadyExists):
        workspace.serving_endpoints.create("chat", config=chat_config())
    with pytest.raises(ResourceAlreadyExists):
        workspace.serving_endpoints.create(LLAMA, config=chat_config())


@pytest.mark.parametrize("config, message", [
    (None, "served_entities must name at least one entity"),
    (chat_config("x", ServedEntityInput(entity_name="system.ai.llama_v3_70b")), "not a model the stand-in serves"),
    (chat_config("x", ServedEntityInput(entity_name="smollm2", workload_size="Huge")), "workload_size 'Huge'"),
    (chat_config("x", ServedEntityInput(entity_name="smollm2"), ServedEntityInput(entity_name="gemma3-270m")),
     "one task"),
    (chat_config("x", ServedEntityInput(entity_name="smollm2", name="a"), ServedEntityInput(entity_name="smollm2", name="a")),
     "must be unique"),
])
def test_create_rejects_bad_config(workspace, config, message):
    with pytest.raises(InvalidParameterValue, match=message):
        workspace.serving_endpoints.create("bad", config=config)
    with pytest.raises(ResourceDoesNotExist):
        workspace.serving_endpoints.get("bad")


def test_create_rejects_bad_name_and_traffic(workspace):
    with pytest.raises(InvalidParameterValue, match="Invalid endpoint name"):
        workspace.serving_endpoints.create("has space", config=chat_config())
    config = chat_config()
    config.traffic_config = TrafficConfig(routes=[Route(served_entity_name="smollm2-1", traffic_percentage=60)])
    with pytest.raises(InvalidParameterValue, match="add up to 60%"):
        workspace.serving_endpoints.create("split", config=config)


def test_rate_limit_needs_calls_or_tokens(workspace):
    with pytest.raises(InvalidParameterValue, match="neither 'calls' nor 'tokens'"):
        workspace.serving_endpoints.put_ai_gateway(
            LLAMA, rate_limits=[AiGatewayRateLimit(renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)])


def test_config_survives_restart(start_server, connect):
    first = start_server()
    workspace = connect(first.host)
    workspace.serving_endpoints.create("chat", config=chat_config()).result(timeout=TIMEOUT)
    workspace.serving_endpoints.put_ai_gateway(
        "chat", rate_limits=[AiGatewayRateLimit(calls=3, renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)])
    workspace.serving_endpoints.put_ai_gateway(
        LLAMA, usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True))
    first.stop()

    second = start_server()
    workspace = connect(second.host)
    endpoint = workspace.serving_endpoints.get("chat")
    assert endpoint.state.ready == EndpointStateReady.READY
    assert endpoint.ai_gateway.rate_limits[0].calls == 3
    assert workspace.serving_endpoints.get(LLAMA).ai_gateway.usage_tracking_config.enabled


def test_deployment_resumes_after_restart(start_server, connect):
    first = start_server(deploy_seconds=30)
    connect(first.host).serving_endpoints.create("chat", config=chat_config())
    first.stop()

    second = start_server(deploy_seconds=0.2)
    workspace = connect(second.host)
    assert workspace.serving_endpoints.get("chat").state.config_update == EndpointStateConfigUpdate.IN_PROGRESS
    endpoint = workspace.serving_endpoints.wait_get_serving_endpoint_not_updating("chat", timeout=TIMEOUT)
    assert endpoint.state.ready == EndpointStateReady.READY
