"""Sliding-window rate limits, driven by a fake clock; expected waits worked out by hand."""

import pytest

from labkit.databricks.errors import DatabricksError
from labkit.databricks.limits import RateLimiter, applicable_limits


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_calls_per_minute_for_endpoint(clock):
    limiter = RateLimiter(clock)
    limits = [{"calls": 2, "key": "endpoint", "renewal_period": "minute"}]
    limiter.admit("chat", "ann", limits)
    clock.now = 10
    limiter.admit("chat", "bob", limits)
    clock.now = 20
    with pytest.raises(DatabricksError) as caught:
        limiter.admit("chat", "ann", limits)
    # The first call (t=0) leaves the window at t=60: 40 s from now.
    assert caught.value.status == 429
    assert caught.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert caught.value.headers() == {"Retry-After": "40"}


def test_window_slides(clock):
    limiter = RateLimiter(clock)
    limits = [{"calls": 1, "renewal_period": "minute"}]
    limiter.admit("chat", "ann", limits)
    clock.now = 60.5
    limiter.admit("chat", "ann", limits)      # the first call no longer counts
    clock.now = 61
    with pytest.raises(DatabricksError):
        limiter.admit("chat", "ann", limits)


def test_user_key_separates_users(clock):
    limiter = RateLimiter(clock)
    limits = [{"calls": 1, "key": "user", "renewal_period": "minute"}]
    limiter.admit("chat", "ann", limits)
    limiter.admit("chat", "bob", limits)
    with pytest.raises(DatabricksError, match="user 'ann'"):
        limiter.admit("chat", "ann", limits)


def test_principal_overrides_user_default():
    limits = [{"calls": 1, "key": "user"}, {"calls": 5, "key": "user", "principal": "ann"}]
    assert applicable_limits(limits, "ann") == [(("user", "ann"), limits[1])]
    assert applicable_limits(limits, "bob") == [(("user", "bob"), limits[0])]


def test_group_limits_match_no_caller():
    limits = [{"calls": 1, "key": "user_group", "principal": "team"}]
    assert applicable_limits(limits, "ann") == []


def test_tokens_per_minute(clock):
    limiter = RateLimiter(clock)
    limits = [{"tokens": 100, "renewal_period": "minute"}]
    limiter.admit("chat", "ann", limits).record_tokens(60)
    clock.now = 5
    limiter.admit("chat", "ann", limits).record_tokens(50)     # admitted: 60 < 100 before it ran
    clock.now = 10
    with pytest.raises(DatabricksError) as caught:
        limiter.admit("chat", "ann", limits)                  # 110 >= 100
    # Dropping the first request (t=0) leaves 50 < 100, so wait until t=60.
    assert caught.value.headers() == {"Retry-After": "50"}


def test_zero_calls_blocks_everything(clock):
    limiter = RateLimiter(clock)
    with pytest.raises(DatabricksError) as caught:
        limiter.admit("chat", "ann", [{"calls": 0, "renewal_period": "minute"}])
    assert caught.value.headers() == {"Retry-After": "60"}


def test_rejected_call_is_not_counted(clock):
    limiter = RateLimiter(clock)
    limits = [{"calls": 1, "renewal_period": "minute"}]
    limiter.admit("chat", "ann", limits)
    for second in (1, 2, 3):
        clock.now = second
        with pytest.raises(DatabricksError):
            limiter.admit("chat", "ann", limits)
    clock.now = 60.1
    limiter.admit("chat", "ann", limits)


def test_endpoints_are_counted_apart(clock):
    limiter = RateLimiter(clock)
    limits = [{"calls": 1, "renewal_period": "minute"}]
    limiter.admit("chat", "ann", limits)
    limiter.admit("other", "ann", limits)
    limiter.forget("chat")
    limiter.admit("chat", "ann", limits)
