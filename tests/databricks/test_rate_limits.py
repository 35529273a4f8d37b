"""AI-gateway rate limits and usage tracking, seen from the SDK and openai clients."""

import openai
import pytest
from databricks.sdk.errors import RequestLimitExceeded
from databricks.sdk.service.serving import (AiGatewayRateLimit, AiGatewayRateLimitKey,
                                            AiGatewayRateLimitRenewalPeriod,
                                            AiGatewayUsageTrackingConfig, ChatMessage, ChatMessageRole)

from labkit.databricks.endpoints import read_usage

pytestmark = pytest.mark.slow

LLAMA = "databricks-meta-llama-3-1-8b-instruct"
MINUTE = AiGatewayRateLimitRenewalPeriod.MINUTE


def ask(workspace, name=LLAMA):
    return workspace.serving_endpoints.query(
        name, messages=[ChatMessage(role=ChatMessageRole.USER, content="Hi")], max_tokens=1)


def test_calls_limit_raises_after_retry_timeout(workspace, clock, server, connect):
    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[AiGatewayRateLimit(calls=1, renewal_period=MINUTE)])
    clock.freeze()
    ask(workspace)
    clock.advance(59)        # one second before the first call leaves the window

    impatient = connect(server.host, retry_timeout_seconds=1)
    with pytest.raises(TimeoutError) as caught:
        ask(impatient)
    # The SDK retried the 429 until its retry timeout; the real error is the cause.
    error = caught.value.__cause__
    assert isinstance(error, RequestLimitExceeded)
    assert error.retry_after_secs == 1
    assert "1 calls per minute" in str(error)


def test_sdk_retry_honours_retry_after(workspace, clock):
    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[AiGatewayRateLimit(calls=1, renewal_period=MINUTE)])
    ask(workspace)
    clock.offset = 59
    # Rejected first with Retry-After: 1; the SDK sleeps that long, retries and gets through.
    assert ask(workspace).usage.completion_tokens == 1


def test_openai_sees_429_with_retry_after(workspace, openai_client):
    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[AiGatewayRateLimit(calls=1, renewal_period=MINUTE)])
    openai_client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "Hi"}],
                                              max_tokens=1)
    assert caught.value.response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert 55 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_tokens_limit(workspace, server, connect, clock):
    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[AiGatewayRateLimit(tokens=10, renewal_period=MINUTE)])
    clock.freeze()
    first = ask(workspace)
    assert first.usage.total_tokens >= 10          # the request that reaches the limit still runs
    clock.advance(59)
    with pytest.raises(TimeoutError) as caught:
        ask(connect(server.host, retry_timeout_seconds=1))
    assert "10 tokens per minute" in str(caught.value.__cause__)


def test_user_limit_leaves_other_users_alone(workspace, server, connect, clock):
    workspace.serving_endpoints.put_ai_gateway(
        LLAMA, rate_limits=[AiGatewayRateLimit(calls=1, key=AiGatewayRateLimitKey.USER, renewal_period=MINUTE)])
    clock.freeze()
    ask(workspace)
    clock.advance(59)
    with pytest.raises(TimeoutError):
        ask(connect(server.host, retry_timeout_seconds=1))
    other = connect(server.host, token="dapi-test-other")
    assert ask(other).usage.completion_tokens == 1


def test_removing_limits(workspace):
    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[AiGatewayRateLimit(calls=1, renewal_period=MINUTE)])
    ask(workspace)
    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[])
    assert ask(workspace).usage.completion_tokens == 1


def test_usage_tracking_records_each_request(workspace, server):
    workspace.serving_endpoints.put_ai_gateway(
        LLAMA, usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True))
    responses = [ask(workspace), ask(workspace)]
    records = read_usage(server.settings.usage_log_path)
    assert [r["prompt_tokens"] for r in records] == [r.usage.prompt_tokens for r in responses]
    assert [r["completion_tokens"] for r in records] == [1, 1]
    assert records[0]["requester"] == "student@labkit.local"
    assert records[0]["endpoint"] == LLAMA


def test_concurrent_burst_admits_exactly_the_limit(workspace, server):
    import concurrent.futures

    import httpx

    workspace.serving_endpoints.put_ai_gateway(LLAMA, rate_limits=[AiGatewayRateLimit(calls=3, renewal_period=MINUTE)])

    def call(_):
        response = httpx.post(f"{server.host}/serving-endpoints/{LLAMA}/invocations", timeout=120,
                              headers={"Authorization": "Bearer dapi-test-main"},
                              json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1})
        return response.status_code, response.json().get("error_code")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(8)))
    assert sorted(status for status, _ in results) == [200] * 3 + [429] * 5
    assert {code for status, code in results if status == 429} == {"REQUEST_LIMIT_EXCEEDED"}
    # The store is intact after the burst.
    assert workspace.serving_endpoints.get(LLAMA).ai_gateway.rate_limits[0].calls == 3
