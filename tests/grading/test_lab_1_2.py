"""Hidden checks of lab 1.2 (Foundation Model APIs), run against the notebook's private stand-in.

Every submission gets its own stand-in server (see ``labkit.grading.services``), so these checks
can create endpoints and set rate limits freely. Expected values come from the grader's own
``WorkspaceClient`` on the same server (usage of the same request, endpoint configuration read
back), from hand-worked prices, and from the rate limit the grader set.
"""

from __future__ import annotations

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.service.serving import (
    AiGatewayRateLimit,
    AiGatewayRateLimitKey,
    AiGatewayRateLimitRenewalPeriod,
    ChatMessage,
    ChatMessageRole,
    EndpointCoreConfigInput,
    ServedEntityInput,
)
from databricks.sdk.errors import ResourceConflict

from labkit.grading.checks import check, expect, expect_equal

LAB = "1.2"

CHAT = "databricks-gpt-oss-20b"
RETRY_TIMEOUT_SECONDS = 10


def _grader_client(notebook) -> WorkspaceClient:
    """A client in the grader's process, on the notebook's own stand-in."""
    if "grader_client" not in notebook.state:
        config = Config(host=notebook.env["DATABRICKS_HOST"], token=notebook.env["DATABRICKS_TOKEN"],
                        retry_timeout_seconds=RETRY_TIMEOUT_SECONDS)
        notebook.state["grader_client"] = WorkspaceClient(config=config)
    return notebook.state["grader_client"]


def _notebook_client(notebook, token: str | None = None):
    """A WorkspaceClient built in the notebook's process (a handle), made by the library, not the student."""
    key = f"client:{token}"
    if key not in notebook.state:
        config = notebook.library("databricks.sdk.config:Config", host=notebook.env["DATABRICKS_HOST"],
                                  token=token or notebook.env["DATABRICKS_TOKEN"],
                                  retry_timeout_seconds=RETRY_TIMEOUT_SECONDS)
        notebook.state[key] = notebook.library("databricks.sdk:WorkspaceClient", config=config)
    return notebook.state[key]


def _ensure_endpoint(client: WorkspaceClient, name: str, entity: str) -> None:
    config = EndpointCoreConfigInput(name=name, served_entities=[
        ServedEntityInput(entity_name=entity, workload_size="Small", scale_to_zero_enabled=True)])
    try:
        client.serving_endpoints.create_and_wait(name=name, config=config)
    except ResourceConflict:
        pass


def _usage(client: WorkspaceClient, endpoint: str, **request) -> tuple[int, int]:
    response = client.serving_endpoints.query(name=endpoint, temperature=0, **request)
    return response.usage.prompt_tokens, response.usage.completion_tokens


def _expect_usage_dict(reply, max_tokens: int, function: str) -> None:
    expect(isinstance(reply, dict), f"{function} should return a dict")
    expect(set(reply) >= {"text", "prompt_tokens", "completion_tokens", "total_tokens"},
           f"{function} should return text, prompt_tokens, completion_tokens and total_tokens")
    expect(isinstance(reply["text"], str), f"{function}'s text should be the reply string")
    expect(0 < reply["completion_tokens"] <= max_tokens,
           f"{function} should pass max_tokens on to the endpoint")
    expect(reply["total_tokens"] == reply["prompt_tokens"] + reply["completion_tokens"],
           f"{function}'s total_tokens should be the server's total")


@check(points=1)
def test_list_chat_endpoints(student, reference):
    """list_chat_endpoints lists every chat endpoint by name, sorted, and nothing else"""
    client = _notebook_client(student)  # runs the notebook first: it creates endpoints too
    grader = _grader_client(student)
    _ensure_endpoint(grader, "grader-extra-chat", "smollm2")
    expected = sorted(e.name for e in grader.serving_endpoints.list() if e.task == "llm/v1/chat")
    expect_equal(student.list_chat_endpoints(client), expected,
                 "list_chat_endpoints does not list exactly the chat endpoints, sorted")


@check(points=3)
def test_chat_reads_usage(student, reference):
    """chat sends one user message with max_tokens and temperature 0 and returns the reply's usage"""
    question = "List three colours of the rainbow."
    reply = student.chat(_notebook_client(student), CHAT, question, max_tokens=5)
    _expect_usage_dict(reply, 5, "chat")
    prompt_tokens, _ = _usage(_grader_client(student), CHAT, max_tokens=5,
                              messages=[ChatMessage(role=ChatMessageRole.USER, content=question)])
    expect_equal(reply["prompt_tokens"], prompt_tokens,
                 "chat should send exactly one user message with the question")


@check(points=2)
def test_chat_system_message(student, reference):
    """chat puts a system text first, as a system message"""
    question, system = "What is BPE?", "You answer in exactly five words."
    reply = student.chat(_notebook_client(student), CHAT, question, system=system, max_tokens=4)
    _expect_usage_dict(reply, 4, "chat")
    prompt_tokens, _ = _usage(_grader_client(student), CHAT, max_tokens=4, messages=[
        ChatMessage(role=ChatMessageRole.SYSTEM, content=system),
        ChatMessage(role=ChatMessageRole.USER, content=question)])
    expect_equal(reply["prompt_tokens"], prompt_tokens,
                 "chat should send the system text as a system message before the question")


@check(points=2)
def test_complete(student, reference):
    """complete sends a prompt to a completions endpoint and returns the reply's usage"""
    grader = _grader_client(student)
    _ensure_endpoint(grader, "grader-completions", "gemma3-270m")
    prompt = "Once upon a time, in a small village,"
    reply = student.complete(_notebook_client(student), "grader-completions", prompt, max_tokens=4)
    _expect_usage_dict(reply, 4, "complete")
    prompt_tokens, _ = _usage(grader, "grader-completions", prompt=prompt, max_tokens=4)
    expect_equal(reply["prompt_tokens"], prompt_tokens, "complete should send the prompt unchanged")


@check(points=1)
def test_usage_cost(student, reference):
    """usage_cost prices prompt and completion tokens per million"""
    cases = [  # worked by hand
        ({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}, 0.5, 1.5, 0.00125),
        ({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, 3.0, 15.0, 0.0),
        ({"prompt_tokens": 2_000_000, "completion_tokens": 1_000_000, "total_tokens": 3_000_000},
         0.07, 0.3, 0.44),
    ]
    for usage, input_price, output_price, dollars in cases:
        expect_equal(student.usage_cost(usage, input_price, output_price), dollars,
                     "usage_cost computes a wrong price", tolerance=1e-9)


@check(points=3)
def test_create_endpoint(student, reference):
    """create_endpoint creates an endpoint for the entity, tolerates an existing one, returns its task"""
    client = _notebook_client(student)
    expect_equal(student.create_endpoint(client, "grader-new-chat", "smollm2"), "llm/v1/chat",
                 "create_endpoint should return the new endpoint's task")
    endpoint = _grader_client(student).serving_endpoints.get("grader-new-chat")
    entities = [entity.entity_name for entity in endpoint.config.served_entities]
    expect_equal(entities, ["smollm2"], "create_endpoint should serve exactly the entity it was given")
    expect_equal(student.create_endpoint(client, "grader-new-chat", "smollm2"), "llm/v1/chat",
                 "create_endpoint should not fail when the endpoint exists already")
    expect_equal(student.create_endpoint(client, "grader-new-completions", "gemma3-270m"),
                 "llm/v1/completions", "create_endpoint should return the task of the entity's endpoint")


@check(points=3)
def test_ask_or_explain(student, reference):
    """ask_or_explain returns the reply, or names a missing endpoint, an invalid request, a bad token"""
    client = _notebook_client(student)
    expect_equal(student.ask_or_explain(client, "grader-no-such-endpoint", "Hi"), "endpoint_not_found",
                 "ask_or_explain should report an endpoint that does not exist")
    expect_equal(student.ask_or_explain(client, CHAT, "Hi", max_tokens=-3), "invalid_request",
                 "ask_or_explain should report an invalid parameter")
    intruder = _notebook_client(student, token="dapi" + "0" * 32)
    expect_equal(student.ask_or_explain(intruder, CHAT, "Hi"), "not_authorized",
                 "ask_or_explain should report a token the workspace rejects")
    answer = student.ask_or_explain(client, CHAT, "Say yes.", max_tokens=2)
    expect(isinstance(answer, str) and answer not in ("endpoint_not_found", "invalid_request",
                                                       "not_authorized"),
           "ask_or_explain should return the reply text when the request succeeds")


@check(points=2)
def test_set_rate_limit(student, reference):
    """set_rate_limit puts an endpoint-wide per-minute call limit, and None removes every limit"""
    grader = _grader_client(student)
    _ensure_endpoint(grader, "grader-limit-config", "smollm2")
    student.set_rate_limit(_notebook_client(student), "grader-limit-config", 7)
    limits = grader.serving_endpoints.get("grader-limit-config").ai_gateway.rate_limits or []
    expect_equal([(limit.calls, limit.key, limit.renewal_period) for limit in limits],
                 [(7, AiGatewayRateLimitKey.ENDPOINT, AiGatewayRateLimitRenewalPeriod.MINUTE)],
                 "set_rate_limit should put one endpoint-wide limit of that many calls per minute")
    student.set_rate_limit(_notebook_client(student), "grader-limit-config", None)
    gateway = grader.serving_endpoints.get("grader-limit-config").ai_gateway
    expect(not (gateway and gateway.rate_limits), "set_rate_limit(..., None) should remove the limits")


@check(points=3)
def test_count_rate_limited(student, reference):
    """count_rate_limited counts successes and 429 responses without retrying, and reads Retry-After"""
    grader = _grader_client(student)
    _ensure_endpoint(grader, "grader-limited", "smollm2")
    grader.serving_endpoints.put_ai_gateway(name="grader-limited", rate_limits=[AiGatewayRateLimit(
        calls=2, key=AiGatewayRateLimitKey.ENDPOINT, renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)])
    outcome = student.count_rate_limited(_notebook_client(student), "grader-limited", 5)
    expect(isinstance(outcome, dict), "count_rate_limited should return a dict")
    expect_equal((outcome.get("ok"), outcome.get("rate_limited")), (2, 3),
                 "count_rate_limited miscounts successes and rate-limited calls")
    retry_after = outcome.get("retry_after")
    expect(isinstance(retry_after, float) and retry_after > 0,
           "count_rate_limited should return the first 429's Retry-After seconds as a float")
    _ensure_endpoint(grader, "grader-unlimited", "smollm2")
    outcome = student.count_rate_limited(_notebook_client(student), "grader-unlimited", 2)
    expect_equal(outcome, {"ok": 2, "rate_limited": 0, "retry_after": None},
                 "count_rate_limited should report no limit on an endpoint without one")
