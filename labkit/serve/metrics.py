"""Prometheus metrics of one engine and its HTTP server, in their own registry.

>>> metrics = ServeMetrics()
>>> metrics.request_finished(model="smollm2", kind="chat", prompt_tokens=12, completion_tokens=5,
...                          time_to_first_token=0.05, tokens_per_second=80.0,
...                          finish_reason="stop", duration=0.1)
>>> 'labkit_completion_tokens_total{kind="chat",model="smollm2"} 5.0' in metrics.render().decode()
True
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RATE_BUCKETS = (1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 400)


class _SchedulerCollector:
    """Read active and waiting sequences from the schedulers at scrape time."""

    def __init__(self, schedulers: dict):
        self.schedulers = schedulers

    def collect(self):
        active = GaugeMetricFamily("labkit_sequences_active", "Sequences holding a KV cache slot",
                                   labels=["model"])
        waiting = GaugeMetricFamily("labkit_sequences_waiting", "Sequences waiting for a slot",
                                    labels=["model"])
        steps = GaugeMetricFamily("labkit_decode_steps", "llama_decode calls so far", labels=["model"])
        tokens = GaugeMetricFamily("labkit_batched_tokens", "Tokens decoded in batches so far",
                                   labels=["model"])
        for model, scheduler in self.schedulers.items():
            active.add_metric([model], scheduler.active)
            waiting.add_metric([model], scheduler.waiting)
            steps.add_metric([model], scheduler.steps)
            tokens.add_metric([model], scheduler.batched_tokens)
        return [active, waiting, steps, tokens]


class ServeMetrics:
    """Counters and histograms for requests, tokens and latency."""

    def __init__(self):
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("labkit_requests", "Finished generation requests",
                                ["model", "kind", "finish_reason"], registry=registry)
        self.prompt_tokens = Counter("labkit_prompt_tokens", "Prompt tokens processed",
                                     ["model", "kind"], registry=registry)
        self.completion_tokens = Counter("labkit_completion_tokens", "Tokens generated",
                                         ["model", "kind"], registry=registry)
        self.time_to_first_token = Histogram("labkit_time_to_first_token_seconds",
                                             "From acceptance to the first generated token",
                                             ["model"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.request_duration = Histogram("labkit_request_duration_seconds",
                                          "From acceptance to the last token", ["model"],
                                          buckets=_LATENCY_BUCKETS, registry=registry)
        self.decode_rate = Histogram("labkit_decode_tokens_per_second",
                                     "Per-request decode speed after the first token", ["model"],
                                     buckets=_RATE_BUCKETS, registry=registry)
        self.http_responses = Counter("labkit_http_responses", "HTTP responses by route and status",
                                      ["route", "status"], registry=registry)

    def watch_schedulers(self, schedulers: dict) -> None:
        """Report the live state of ``{model id: Scheduler}`` on every scrape."""
        self.registry.register(_SchedulerCollector(schedulers))

    def request_finished(self, *, model: str, kind: str, prompt_tokens: int, completion_tokens: int,
                         time_to_first_token: float | None, tokens_per_second: float | None,
                         finish_reason: str, duration: float) -> None:
        """Record one finished (or cancelled) generation request."""
        self.requests.labels(model, kind, finish_reason).inc()
        self.prompt_tokens.labels(model, kind).inc(prompt_tokens)
        self.completion_tokens.labels(model, kind).inc(completion_tokens)
        self.request_duration.labels(model).observe(duration)
        if time_to_first_token is not None:
            self.time_to_first_token.labels(model).observe(time_to_first_token)
        if tokens_per_second is not None:
            self.decode_rate.labels(model).observe(tokens_per_second)

    def embeddings_finished(self, model: str, prompt_tokens: int) -> None:
        """Record one embeddings request."""
        self.requests.labels(model, "embeddings", "stop").inc()
        self.prompt_tokens.labels(model, "embeddings").inc(prompt_tokens)

    def http_response(self, route: str, status: int) -> None:
        """Count one HTTP response."""
        self.http_responses.labels(route, str(status)).inc()

    def render(self) -> bytes:
        """Return every metric in the Prometheus text exposition format."""
        return generate_latest(self.registry)
