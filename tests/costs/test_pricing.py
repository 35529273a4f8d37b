"""Request and workload costs and the break-even against a self-hosted machine, worked by hand."""

import pytest

from labkit.costs import catalog, pricing


@pytest.fixture
def llama_8b():
    return catalog.get_price("databricks-meta-llama-3-1-8b-instruct")   # $0.15 in, $0.45 out


def test_workload_cost_by_hand(llama_8b):
    workload = pricing.Workload("chat", requests_per_month=30_000, input_tokens=1_000, output_tokens=100)
    # per request: 1000 * 0.15e-6 + 100 * 0.45e-6 = 0.000195 $; times 30,000 = 5.85 $
    assert pricing.workload_cost(llama_8b, workload) == pytest.approx(5.85)


def test_negative_tokens_rejected(llama_8b):
    with pytest.raises(ValueError, match="token counts must be >= 0"):
        pricing.request_cost(llama_8b, -1, 10)


def test_machine_capacity_by_hand():
    machine = pricing.Machine("cpu", usd_per_hour=0.10, output_tokens_per_second=50,
                              prompt_tokens_per_second=500)
    # 500 prompt tokens take 1 s, 100 reply tokens take 2 s: 3 s per request, 1,200 per hour.
    assert machine.seconds_per_request(500, 100) == pytest.approx(3.0)
    assert machine.requests_per_month(500, 100) == pytest.approx(1200 * 730)
    # 1,200 * 730 = 876,000 requests fit one machine; 876,001 need two.
    assert machine.monthly_cost(876_000, 500, 100) == pytest.approx(73.0)
    assert machine.monthly_cost(876_001, 500, 100) == pytest.approx(146.0)
    assert machine.monthly_cost(0, 500, 100) == pytest.approx(73.0)


def test_machine_rejects_zero_throughput():
    with pytest.raises(ValueError, match="output_tokens_per_second must be > 0"):
        pricing.Machine("broken", usd_per_hour=1, output_tokens_per_second=0, prompt_tokens_per_second=1)


def test_break_even_reachable(llama_8b):
    machine = pricing.Machine("gpu", usd_per_hour=1.0, output_tokens_per_second=1000,
                              prompt_tokens_per_second=10_000)
    point = pricing.break_even(llama_8b, machine, input_tokens=500, output_tokens=200)
    # pay-per-token: 500 * 0.15e-6 + 200 * 0.45e-6 = 0.000165 $; the machine costs 730 $ a month
    assert point.pay_per_token_per_request == pytest.approx(0.000165)
    assert point.requests_per_month == pytest.approx(730 / 0.000165)
    # 0.05 s + 0.2 s per request: 14,400 requests an hour
    assert point.capacity_per_month == pytest.approx(14_400 * 730)
    assert point.reachable


def test_break_even_unreachable_on_slow_machine(llama_8b):
    # 65 tokens/s like the course CPU: a 1 $/h machine serves about 854,100 replies of 200 tokens
    # a month at most, but needs 4.4 million to break even.
    machine = pricing.Machine("cpu", usd_per_hour=1.0, output_tokens_per_second=65,
                              prompt_tokens_per_second=1e9)
    point = pricing.break_even(llama_8b, machine, input_tokens=500, output_tokens=200)
    assert point.capacity_per_month == pytest.approx(3600 / (200 / 65) * 730, rel=1e-6)
    assert not point.reachable
    assert point.self_hosted_per_request_at_capacity > point.pay_per_token_per_request


@pytest.mark.parametrize("requests", [-1000.0, float("nan"), float("inf")])
def test_workload_rejects_bad_request_count(requests):
    with pytest.raises(ValueError, match="requests_per_month must be a finite number >= 0"):
        pricing.Workload("bad", requests_per_month=requests, input_tokens=500, output_tokens=200)
