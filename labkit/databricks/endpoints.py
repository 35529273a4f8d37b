"""Serving endpoints: create, configure, deploy, route, delete; views in the shape the SDK parses.

Two kinds of endpoint exist. Pay-per-token endpoints (``databricks-meta-llama-3-3-70b-instruct``, ...)
are built in: always READY, never deleted, and only their AI-gateway settings can change. Endpoints
a client creates name a local model as their served entity (``{"entity_name": "smollm2"}``). They
go through the same life cycle as on Databricks. A new config is *pending*, and the endpoint's
``state.config_update`` is ``IN_PROGRESS`` until the local model is loaded. Then the config becomes
active and the state ``NOT_UPDATING``. While an update runs, the previous config keeps serving.

>>> import tempfile, pathlib
>>> from labkit.databricks.store import EndpointStore
>>> service = EndpointService(EndpointStore(pathlib.Path(tempfile.mkdtemp()) / "w.json"))
>>> service.get("databricks-meta-llama-3-3-70b-instruct")["state"]
{'ready': 'READY', 'config_update': 'NOT_UPDATING'}
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from labkit.databricks import errors, foundation
from labkit.databricks.schemas import AiGatewayConfig, CreateEndpointRequest, EndpointConfigInput
from labkit.databricks.store import EndpointStore

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
MAX_SERVED_ENTITIES = 10
WORKLOAD_SIZES = ("Small", "Medium", "Large")
WORKLOAD_TYPES = ("CPU", "CPU_LARGE", "CPU_MEDIUM", "GPU_LARGE", "GPU_MEDIUM", "GPU_SMALL",
                  "GPU_XLARGE", "GPU_XLARGE_8", "MULTIGPU_MEDIUM")
PAY_PER_TOKEN_CREATOR = "Databricks"

# Loads a local model (by alias) so that an endpoint can serve it; raises if it cannot.
Prepare = Callable[[str], Awaitable[None]]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Target:
    """The destination of one query: the endpoint's task, the chosen served entity and its local model."""

    endpoint: str
    task: str
    served_entity: str
    local_model: str
    rate_limits: list[dict]
    usage_tracking: bool


class EndpointService:
    """The serving-endpoints API over an :class:`EndpointStore`.

    ``deploy_seconds`` is how long a config update stays IN_PROGRESS at least, so that clients see
    the same state sequence as on Databricks (where it takes minutes). ``prepare`` loads a local
    model before its config becomes active; without it, only the delay applies.
    """

    def __init__(self, store: EndpointStore, *, deploy_seconds: float = 1.0,
                 prepare: Prepare | None = None, usage_log: Path | None = None):
        self.store = store
        self.deploy_seconds = deploy_seconds
        self.prepare = prepare
        self.usage_log = usage_log
        self._tasks: set[asyncio.Task] = set()

    # -- reading -------------------------------------------------------------------------------

    def list(self) -> list[dict]:
        """Return summaries of every endpoint, built-in ones first (``GET /api/2.0/serving-endpoints``)."""
        built_in = [self._pay_per_token_view(m) for m in foundation.PAY_PER_TOKEN.values()]
        created = [self._custom_view(e) for e in sorted(self.store.endpoints(), key=lambda e: e["name"])]
        return [_summary(view) for view in built_in + created]

    def get(self, name: str) -> dict:
        """Return the detailed view of one endpoint, or raise RESOURCE_DOES_NOT_EXIST."""
        if name in foundation.PAY_PER_TOKEN:
            return self._pay_per_token_view(foundation.PAY_PER_TOKEN[name])
        endpoint = self.store.get_endpoint(name)
        if endpoint is None:
            raise errors.resource_does_not_exist(name)
        return self._custom_view(endpoint)

    def _pay_per_token_view(self, model: foundation.PayPerTokenModel) -> dict:
        override = self.store.get_override(model.endpoint_name)
        view = {
            "name": model.endpoint_name,
            "id": uuid.uuid5(uuid.NAMESPACE_URL, model.endpoint_name).hex,
            "creator": PAY_PER_TOKEN_CREATOR,
            "task": model.task,
            "description": model.description(),
            "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": {
                "config_version": 1,
                "served_entities": [{
                    "name": model.local_model,
                    "foundation_model": {
                        "name": model.endpoint_name,
                        "display_name": model.display_name,
                        "description": model.description(),
                    },
                    "state": {"deployment": "DEPLOYMENT_READY",
                              "deployment_state_message": "served by the local stand-in"},
                }],
                "traffic_config": {"routes": [{"served_entity_name": model.local_model,
                                               "traffic_percentage": 100}]},
            },
            "permission_level": "CAN_QUERY",
        }
        if override.get("ai_gateway"):
            view["ai_gateway"] = override["ai_gateway"]
        return view

    def _custom_view(self, endpoint: dict) -> dict:
        view = {key: value for key, value in endpoint.items() if value is not None}
        view["permission_level"] = "CAN_MANAGE"
        return view

    # -- creating and changing -------------------------------------------------------------------

    def create(self, request: CreateEndpointRequest, creator: str) -> dict:
        """Create an endpoint whose config deploys in the background; return its detailed view."""
        name = request.name
        if not NAME_PATTERN.match(name):
            raise errors.invalid_parameter(
                f"Invalid endpoint name '{name}': use 1 to 63 letters, digits, dashes and underscores.")
        if name in foundation.PAY_PER_TOKEN or self.store.get_endpoint(name) is not None:
            raise errors.resource_already_exists(name)
        for field in ("email_notifications", "telemetry_config"):
            if getattr(request, field) is not None:
                raise errors.invalid_parameter(
                    f"'{field}' is not supported by the local stand-in; remove it from the request.")

        now = _now_ms()
        pending = self._build_config(request.config, creator, now, version=1)
        gateway = self._build_ai_gateway(request.ai_gateway) if request.ai_gateway else None
        if request.rate_limits:
            # The deprecated top-level rate limits are AI-gateway call limits in today's API.
            gateway = gateway or {}
            gateway.setdefault("rate_limits", []).extend(
                limit.model_dump(exclude_none=True) for limit in request.rate_limits)

        endpoint = {
            "name": name,
            "id": uuid.uuid4().hex,
            "creator": creator,
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "description": request.description,
            "tags": [tag.model_dump(exclude_none=True) for tag in request.tags or []] or None,
            "task": pending.pop("task"),
            "route_optimized": request.route_optimized,
            "budget_policy_id": request.budget_policy_id,
            "config": None,
            "pending_config": pending,
            "state": {"ready": "NOT_READY", "config_update": "IN_PROGRESS"},
            "ai_gateway": gateway,
        }
        self.store.put_endpoint(endpoint)
        log.info("created endpoint %s (%s, served by %s)", name, endpoint["task"],
                 ", ".join(e["entity_name"] for e in pending["served_entities"]))
        self._schedule_deployment(name, pending["config_version"])
        return self._custom_view(endpoint)

    def update_config(self, name: str, config: EndpointConfigInput, creator: str) -> dict:
        """Start deploying a new config (``PUT .../config``); the current one serves until it is ready."""
        if name in foundation.PAY_PER_TOKEN:
            raise errors.permission_denied(
                f"Endpoint '{name}' is a pay-per-token endpoint managed by Databricks; its config "
                "cannot be changed. Create your own endpoint to choose what it serves.")
        endpoint = self.store.get_endpoint(name)
        if endpoint is None:
            raise errors.resource_does_not_exist(name)
        if endpoint["state"]["config_update"] == "IN_PROGRESS":
            raise errors.resource_conflict(
                f"Endpoint '{name}' already has a config update in progress. Wait until its "
                "state.config_update is NOT_UPDATING, then try again.")

        version = max((endpoint.get("config") or {}).get("config_version", 0),
                      (endpoint.get("pending_config") or {}).get("config_version", 0)) + 1
        now = _now_ms()
        pending = self._build_config(config, creator, now, version=version)
        task = pending.pop("task")
        if endpoint.get("config") and task != endpoint["task"]:
            raise errors.invalid_parameter(
                f"Endpoint '{name}' serves {endpoint['task']}; the new served entities serve {task}. "
                "Create a new endpoint for another task.")

        endpoint["task"] = task
        endpoint["pending_config"] = pending
        endpoint["state"]["config_update"] = "IN_PROGRESS"
        endpoint["last_updated_timestamp"] = now
        self.store.put_endpoint(endpoint)
        log.info("updating endpoint %s to config version %d", name, version)
        self._schedule_deployment(name, version)
        return self._custom_view(endpoint)

    def put_ai_gateway(self, name: str, gateway: AiGatewayConfig) -> dict:
        """Replace an endpoint's AI-gateway settings (``PUT .../ai-gateway``) and return them."""
        built = self._build_ai_gateway(gateway)
        if name in foundation.PAY_PER_TOKEN:
            override = self.store.get_override(name)
            override["ai_gateway"] = built
            self.store.put_override(name, override)
        else:
            endpoint = self.store.get_endpoint(name)
            if endpoint is None:
                raise errors.resource_does_not_exist(name)
            endpoint["ai_gateway"] = built
            endpoint["last_updated_timestamp"] = _now_ms()
            self.store.put_endpoint(endpoint)
        log.info("set AI gateway of %s: %d rate limit(s), usage tracking %s", name,
                 len(built.get("rate_limits", [])),
                 built.get("usage_tracking_config", {}).get("enabled", False))
        return built

    def delete(self, name: str) -> None:
        if name in foundation.PAY_PER_TOKEN:
            raise errors.permission_denied(
                f"Endpoint '{name}' is a pay-per-token endpoint managed by Databricks and cannot "
                "be deleted.")
        if not self.store.delete_endpoint(name):
            raise errors.resource_does_not_exist(name)
        log.info("deleted endpoint %s", name)

    # -- validation ------------------------------------------------------------------------------

    def _build_config(self, config: EndpointConfigInput | None, creator: str, now: int,
                      version: int) -> dict:
        """Check a config input and return the stored form, with its task under ``"task"``."""
        known = ", ".join(foundation.LOCAL_MODELS)
        if config is not None and config.served_models:
            raise errors.invalid_parameter(
                "'served_models' is deprecated and not supported; send 'served_entities' instead, "
                f"for example [{{\"entity_name\": \"smollm2\", \"entity_version\": \"1\"}}].")
        if config is not None and config.auto_capture_config is not None:
            raise errors.invalid_parameter(
                "'auto_capture_config' (inference tables) is not supported by the local stand-in; "
                "remove it from the request.")
        if config is None or not config.served_entities:
            raise errors.invalid_parameter(
                "config.served_entities must name at least one entity, for example "
                f"[{{\"entity_name\": \"smollm2\", \"entity_version\": \"1\"}}]; known entities: {known}.")
        if len(config.served_entities) > MAX_SERVED_ENTITIES:
            raise errors.invalid_parameter(
                f"config.served_entities has {len(config.served_entities)} entities; an endpoint "
                f"serves at most {MAX_SERVED_ENTITIES}.")

        entities, tasks = [], set()
        for i, entity in enumerate(config.served_entities):
            where = f"config.served_entities.{i}"
            if entity.external_model is not None:
                raise errors.invalid_parameter(
                    f"{where}.external_model: external models call a provider over the internet; the "
                    f"local stand-in serves only local models ({known}) through entity_name.")
            if not entity.entity_name:
                raise errors.invalid_parameter(f"{where}.entity_name is required; one of: {known}.")
            local = foundation.LOCAL_MODELS.get(entity.entity_name)
            if local is None:
                raise errors.invalid_parameter(
                    f"{where}.entity_name '{entity.entity_name}' is not a model the stand-in serves; "
                    f"use one of: {known}.")
            if entity.workload_size is not None and entity.workload_size not in WORKLOAD_SIZES:
                raise errors.invalid_parameter(
                    f"{where}.workload_size '{entity.workload_size}' is invalid; use one of "
                    f"{', '.join(WORKLOAD_SIZES)}.")
            if entity.workload_type is not None and entity.workload_type not in WORKLOAD_TYPES:
                raise errors.invalid_parameter(
                    f"{where}.workload_type '{entity.workload_type}' is invalid; use one of "
                    f"{', '.join(WORKLOAD_TYPES)}.")
            entity_version = entity.entity_version or "1"
            stored = entity.model_dump(exclude_none=True)
            stored.update({
                "name": entity.name or f"{entity.entity_name}-{entity_version}",
                "entity_version": entity_version,
                "creator": creator,
                "creation_timestamp": now,
                "state": {"deployment": "DEPLOYMENT_CREATING",
                          "deployment_state_message": f"loading the local model {local.alias}"},
            })
            stored.setdefault("workload_size", "Small")
            stored.setdefault("scale_to_zero_enabled", False)
            entities.append(stored)
            tasks.add(local.task)

        names = [e["name"] for e in entities]
        if len(set(names)) != len(names):
            raise errors.invalid_parameter(
                f"served entity names must be unique; got {names}. Set 'name' on each entity.")
        if len(tasks) > 1:
            raise errors.invalid_parameter(
                f"all served entities of an endpoint must serve one task; got {sorted(tasks)}.")

        return {
            "task": tasks.pop(),
            "config_version": version,
            "start_time": now,
            "served_entities": entities,
            "traffic_config": {"routes": _build_routes(config, names)},
        }

    def _build_ai_gateway(self, gateway: AiGatewayConfig) -> dict:
        for field in ("guardrails", "inference_table_config", "fallback_config"):
            if getattr(gateway, field) is not None:
                raise errors.invalid_parameter(
                    f"ai_gateway.{field} is not supported by the local stand-in; it supports "
                    "rate_limits and usage_tracking_config.")
        limits = []
        for i, limit in enumerate(gateway.rate_limits or []):
            if limit.calls is None and limit.tokens is None:
                raise errors.invalid_parameter(
                    f"ai_gateway.rate_limits.{i} sets neither 'calls' nor 'tokens'; set at least one.")
            if limit.principal is not None and limit.key == "endpoint":
                raise errors.invalid_parameter(
                    f"ai_gateway.rate_limits.{i} has a principal but key 'endpoint'; a principal "
                    "needs key 'user', 'user_group' or 'service_principal'.")
            limits.append(limit.model_dump(exclude_none=True))

        built: dict = {}
        if gateway.rate_limits is not None:
            built["rate_limits"] = limits
        if gateway.usage_tracking_config is not None:
            built["usage_tracking_config"] = gateway.usage_tracking_config.model_dump()
        return built

    # -- deploying -------------------------------------------------------------------------------

    def _schedule_deployment(self, name: str, version: int) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Outside a server (doctests, scripts), nothing runs in the background: stay pending.
            log.debug("no event loop: config %d of %s stays pending", version, name)
            return
        task = loop.create_task(self._deploy(name, version))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume_deployments(self) -> None:
        """Restart the deployments that were in progress when the stand-in stopped."""
        for endpoint in self.store.endpoints():
            pending = endpoint.get("pending_config")
            if endpoint["state"]["config_update"] == "IN_PROGRESS" and pending:
                log.info("resuming deployment of %s config %d", endpoint["name"],
                         pending["config_version"])
                self._schedule_deployment(endpoint["name"], pending["config_version"])

    async def wait_for_deployments(self) -> None:
        """Wait until every scheduled deployment has finished (tests and shutdown use it)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel_deployments(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _deploy(self, name: str, version: int) -> None:
        await asyncio.sleep(self.deploy_seconds)
        endpoint = self.store.get_endpoint(name)
        pending = (endpoint or {}).get("pending_config")
        if pending is None or pending["config_version"] != version:
            return  # deleted, or replaced by a newer config meanwhile

        failure = None
        try:
            for entity in pending["served_entities"]:
                if self.prepare is not None:
                    await self.prepare(entity["entity_name"])
        except Exception as error:  # any failure to load becomes UPDATE_FAILED, as on Databricks
            failure = f"{type(error).__name__}: {error}"
            log.error("deployment of %s config %d failed: %s", name, version, failure)

        endpoint = self.store.get_endpoint(name)
        if endpoint is None or (endpoint.get("pending_config") or {}).get("config_version") != version:
            return
        now = _now_ms()
        endpoint["pending_config"] = None
        endpoint["last_updated_timestamp"] = now
        if failure is None:
            pending.pop("start_time", None)
            for entity in pending["served_entities"]:
                entity["state"] = {"deployment": "DEPLOYMENT_READY",
                                   "deployment_state_message": "served by the local stand-in"}
            endpoint["config"] = pending
            endpoint["state"] = {"ready": "READY", "config_update": "NOT_UPDATING"}
            log.info("endpoint %s is ready with config version %d", name, version)
        else:
            endpoint["state"] = {"ready": "READY" if endpoint.get("config") else "NOT_READY",
                                 "config_update": "UPDATE_FAILED"}
        self.store.put_endpoint(endpoint)

    # -- querying --------------------------------------------------------------------------------

    def target(self, name: str) -> Target:
        """Choose the served entity for a query (by traffic percentage) and return it with the limits."""
        if name in foundation.PAY_PER_TOKEN:
            model = foundation.PAY_PER_TOKEN[name]
            gateway = self.store.get_override(name).get("ai_gateway") or {}
            return Target(name, model.task, model.local_model, model.local_model,
                          gateway.get("rate_limits", []),
                          gateway.get("usage_tracking_config", {}).get("enabled", False))

        endpoint = self.store.get_endpoint(name)
        if endpoint is None:
            raise errors.resource_does_not_exist(name)
        config = endpoint.get("config")
        if not config:
            raise errors.temporarily_unavailable(
                f"Endpoint '{name}' is not ready: its first config is still deploying "
                f"(state.config_update = {endpoint['state']['config_update']}).")
        routes = config["traffic_config"]["routes"]
        chosen = random.choices(routes, weights=[r["traffic_percentage"] for r in routes])[0]
        entity = next(e for e in config["served_entities"] if e["name"] == chosen["served_entity_name"])
        gateway = endpoint.get("ai_gateway") or {}
        return Target(name, endpoint["task"], entity["name"], entity["entity_name"],
                      gateway.get("rate_limits", []),
                      gateway.get("usage_tracking_config", {}).get("enabled", False))

    def record_usage(self, target: Target, user: str, usage: dict) -> None:
        """Append one request's usage to the usage log when the endpoint tracks usage."""
        if not target.usage_tracking or self.usage_log is None:
            return
        record = {"endpoint": target.endpoint, "served_entity": target.served_entity,
                  "requester": user, "request_time": _now_ms(), **usage}
        self.usage_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.usage_log, "a", encoding="utf-8") as log_file:
            log_file.write(json.dumps(record) + "\n")


def read_usage(path: Path | str) -> list[dict]:
    """Return the usage records written for endpoints with usage tracking, oldest first."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _build_routes(config: EndpointConfigInput, names: list[str]) -> list[dict]:
    """Check the traffic split, or split evenly when the request gives none."""
    if config.traffic_config is None or not config.traffic_config.routes:
        share, rest = divmod(100, len(names))
        return [{"served_entity_name": n, "traffic_percentage": share + (1 if i < rest else 0)}
                for i, n in enumerate(names)]

    routes = []
    for i, route in enumerate(config.traffic_config.routes):
        target = route.served_entity_name or route.served_model_name
        if target not in names:
            raise errors.invalid_parameter(
                f"config.traffic_config.routes.{i} names served entity '{target}', which the "
                f"config does not contain; served entities: {', '.join(names)}.")
        routes.append({"served_entity_name": target, "traffic_percentage": route.traffic_percentage})
    total = sum(r["traffic_percentage"] for r in routes)
    if total != 100:
        raise errors.invalid_parameter(
            f"config.traffic_config.routes add up to {total}%; they must add up to 100%.")
    return routes


def _summary(view: dict) -> dict:
    """Reduce a detailed view to what ``list`` returns (``ServingEndpoint`` in the SDK)."""
    keys = ("name", "id", "creator", "creation_timestamp", "last_updated_timestamp", "description",
            "tags", "task", "state", "ai_gateway", "budget_policy_id")
    summary = {k: view[k] for k in keys if view.get(k) is not None}
    config = view.get("config") or view.get("pending_config")
    if config:
        summary["config"] = {"served_entities": [
            {k: e[k] for k in ("name", "entity_name", "entity_version", "foundation_model") if k in e}
            for e in config["served_entities"]]}
    return summary
