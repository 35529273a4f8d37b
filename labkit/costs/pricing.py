"""Costs of requests and workloads, pay-per-token against a self-hosted machine.

Pay-per-token bills tokens: ``input_tokens * input_price + output_tokens * output_price``. A
self-hosted machine bills hours, whether busy or idle, and serves as many requests as its measured
throughput allows. The break-even volume is where the two bills are equal. Below it pay-per-token
is cheaper. Above it the machine is cheaper, as long as it keeps up with the requests.

>>> from labkit.costs.catalog import get_price
>>> price = get_price("databricks-meta-llama-3-1-8b-instruct")
>>> workload = Workload("chat", requests_per_month=1_000_000, input_tokens=500, output_tokens=200)
>>> round(workload_cost(price, workload), 2)
165.0
>>> machine = Machine("small GPU", usd_per_hour=1.0, output_tokens_per_second=1000,
...                   prompt_tokens_per_second=10000)
>>> point = break_even(price, machine, input_tokens=500, output_tokens=200)
>>> round(point.requests_per_month), point.reachable
(4424242, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit.costs.catalog import Price

HOURS_PER_MONTH = 730.0   # 8,760 hours a year / 12


@dataclass(frozen=True)
class Workload:
    """A traffic pattern: requests per month and the tokens of an average request."""

    name: str
    requests_per_month: float
    input_tokens: float
    output_tokens: float

    def __post_init__(self):
        for field_name in ("requests_per_month", "input_tokens", "output_tokens"):
            value = getattr(self, field_name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"workload {self.name!r}: {field_name} must be a finite number >= 0, "
                                 f"not {value}")


def request_cost(price: Price, input_tokens: float, output_tokens: float = 0) -> float:
    """Return the pay-per-token list price in dollars of one request."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got input {input_tokens}, output {output_tokens}")
    return price.cost(input_tokens, output_tokens)


def workload_cost(price: Price, workload: Workload) -> float:
    """Return the monthly pay-per-token bill in dollars of a workload."""
    return workload.requests_per_month * request_cost(price, workload.input_tokens,
                                                      workload.output_tokens)


@dataclass(frozen=True)
class Machine:
    """A self-hosted server: its price per hour and the throughput measured on it.

    Throughputs are totals over all requests the server runs at once (tokens per second).
    """

    name: str
    usd_per_hour: float
    output_tokens_per_second: float
    prompt_tokens_per_second: float

    def __post_init__(self):
        for field in ("usd_per_hour", "output_tokens_per_second", "prompt_tokens_per_second"):
            if not getattr(self, field) > 0:
                raise ValueError(f"Machine.{field} must be > 0, got {getattr(self, field)!r}")

    def seconds_per_request(self, input_tokens: float, output_tokens: float) -> float:
        """Busy time of one request: reading the prompt plus generating the reply."""
        return input_tokens / self.prompt_tokens_per_second + output_tokens / self.output_tokens_per_second

    def requests_per_month(self, input_tokens: float, output_tokens: float) -> float:
        """Requests one machine serves in a month when it is busy all the time."""
        return HOURS_PER_MONTH * 3600 / self.seconds_per_request(input_tokens, output_tokens)

    def monthly_cost(self, requests_per_month: float, input_tokens: float, output_tokens: float) -> float:
        """Dollars for enough machines, running all month, to serve the volume (at least one)."""
        capacity = self.requests_per_month(input_tokens, output_tokens)
        machines = max(1, math.ceil(requests_per_month / capacity))
        return machines * self.usd_per_hour * HOURS_PER_MONTH


@dataclass(frozen=True)
class BreakEven:
    """The volume at which one always-on machine costs as much as pay-per-token."""

    requests_per_month: float       # pay-per-token bill equals one machine's monthly cost here
    capacity_per_month: float       # requests one machine can serve in a month
    pay_per_token_per_request: float
    self_hosted_per_request_at_capacity: float

    @property
    def reachable(self) -> bool:
        """False when even a fully busy machine costs more per request than pay-per-token."""
        return self.requests_per_month <= self.capacity_per_month


def break_even(price: Price, machine: Machine, *, input_tokens: float,
               output_tokens: float) -> BreakEven:
    """Return the monthly request volume at which one machine and pay-per-token cost the same."""
    per_request = request_cost(price, input_tokens, output_tokens)
    if per_request <= 0:
        raise ValueError(f"{price.endpoint} costs nothing for {input_tokens} input and "
                         f"{output_tokens} output tokens; no break-even exists")
    capacity = machine.requests_per_month(input_tokens, output_tokens)
    monthly = machine.usd_per_hour * HOURS_PER_MONTH
    return BreakEven(requests_per_month=monthly / per_request, capacity_per_month=capacity,
                     pay_per_token_per_request=per_request,
                     self_hosted_per_request_at_capacity=monthly / capacity)
