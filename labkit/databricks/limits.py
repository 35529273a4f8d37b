"""AI-gateway rate limits: calls and tokens per minute, per endpoint or per user.

A limit ``{"calls": 2, "key": "endpoint", "renewal_period": "minute"}`` lets all callers together
make two requests to the endpoint in any 60-second window. ``key: "user"`` gives each user their own
budget. A ``principal`` narrows a user limit to one user, and for that user it replaces the default
user limit. ``tokens`` limits count prompt plus completion tokens of the requests in the window.
The window slides: a request stops counting exactly 60 seconds after it was admitted. The
``Retry-After`` header of a rejection gives the seconds until the oldest counted request leaves it.

>>> clock = iter([0.0, 1.0, 2.0, 61.5]).__next__
>>> limiter = RateLimiter(clock=clock)
>>> limits = [{"calls": 2, "key": "endpoint", "renewal_period": "minute"}]
>>> _ = limiter.admit("chat", "ann", limits)
>>> _ = limiter.admit("chat", "bob", limits)
>>> try:
...     limiter.admit("chat", "ann", limits)
... except DatabricksError as error:
...     print(error.status, error.headers())
429 {'Retry-After': '58'}
>>> _ = limiter.admit("chat", "ann", limits)  # at t=61.5 the first call has left the window
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from labkit.databricks.errors import DatabricksError, request_limit_exceeded

WINDOW_SECONDS = 60.0


@dataclass
class _Event:
    """One admitted request: when it was admitted and the tokens it used (known after it ran)."""

    time: float
    tokens: int = 0


@dataclass
class Admission:
    """The events a request added, so its token usage can be filled in once the model has run."""

    events: list[_Event] = field(default_factory=list)

    def record_tokens(self, tokens: int) -> None:
        for event in self.events:
            event.tokens = tokens


def applicable_limits(limits: list[dict], user: str) -> list[tuple[tuple, dict]]:
    """Return (bucket key, limit) for each limit that applies to ``user``.

    >>> applicable_limits([{"calls": 5, "key": "user"},
    ...                    {"calls": 9, "key": "user", "principal": "ann"}], "ann")
    [(('user', 'ann'), {'calls': 9, 'key': 'user', 'principal': 'ann'})]
    """
    user_limits = [l for l in limits if l.get("key", "endpoint") == "user"]
    personal = [l for l in user_limits if l.get("principal") == user]
    chosen = personal or [l for l in user_limits if not l.get("principal")]

    result = [(("endpoint",), l) for l in limits if l.get("key", "endpoint") == "endpoint"]
    result += [(("user", user), l) for l in chosen]
    # NOTE: every caller of the stand-in is a user with no groups, so limits keyed by user_group
    # or service_principal are stored and returned but never match a caller.
    return result


class RateLimiter:
    """Sliding-window counters of calls and tokens, one per endpoint and bucket key.

    ``clock`` returns seconds (monotonic by default); tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[tuple, collections.deque[_Event]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def admit(self, endpoint: str, user: str, limits: list[dict]) -> Admission:
        """Count one request against every applicable limit, or raise 429 REQUEST_LIMIT_EXCEEDED.

        A token limit rejects a request only once the tokens already used in the window reach it,
        because a request's own token count is known only after the model has run.
        """
        # NOTE: Databricks' own pay-per-token quotas (input and output tokens per minute) reserve
        # max_tokens before admission; the stand-in does not model those platform quotas.
        now = self._clock()
        checks = applicable_limits(limits, user)
        with self._lock:
            waits = []
            for key, limit in checks:
                events = self._window((endpoint, *key), now)
                wait = _wait_for_calls(events, limit.get("calls"), now)
                if wait is not None:
                    waits.append((wait, f"{limit['calls']} calls per minute", key))
                wait = _wait_for_tokens(events, limit.get("tokens"), now)
                if wait is not None:
                    waits.append((wait, f"{limit['tokens']} tokens per minute", key))
            if waits:
                wait, rule, key = max(waits)
                scope = "all callers" if key[0] == "endpoint" else f"user '{key[1]}'"
                raise request_limit_exceeded(
                    f"Rate limit of {rule} ({scope}) on endpoint '{endpoint}' exceeded. "
                    f"Retry after {wait:.0f} s.", retry_after_seconds=wait)

            admission = Admission()
            for key, _ in checks:
                event = _Event(now)
                self._buckets[(endpoint, *key)].append(event)
                admission.events.append(event)
            return admission

    def forget(self, endpoint: str) -> None:
        """Drop every counter of an endpoint, for example when it is deleted."""
        with self._lock:
            for key in [k for k in self._buckets if k[0] == endpoint]:
                del self._buckets[key]

    def _window(self, bucket: tuple, now: float) -> collections.deque[_Event]:
        events = self._buckets[bucket]
        while events and events[0].time <= now - WINDOW_SECONDS:
            events.popleft()
        return events


def _wait_for_calls(events: collections.deque[_Event], calls: int | None, now: float) -> float | None:
    """Seconds until one more call fits, or None if it fits now."""
    if calls is None or len(events) < calls:
        return None
    if calls == 0:
        return WINDOW_SECONDS
    # The call that must leave the window is the one that keeps the count at the limit.
    return events[len(events) - calls].time + WINDOW_SECONDS - now


def _wait_for_tokens(events: collections.deque[_Event], tokens: int | None, now: float) -> float | None:
    """Seconds until the tokens in the window drop below the limit, or None if they are below it."""
    if tokens is None:
        return None
    used = sum(e.tokens for e in events)
    if used < tokens:
        return None
    if tokens == 0:
        return WINDOW_SECONDS
    for event in events:
        used -= event.tokens
        if used < tokens:
            return event.time + WINDOW_SECONDS - now
    return WINDOW_SECONDS
