"""Prometheus metrics of the serving data plane (``GET /metrics``).

Each :class:`ServeMetrics` owns its own ``CollectorRegistry`` so several servers (tests, Ray
replicas) in one process do not share counters. Names follow Prometheus conventions (base units,
``_total`` counters, ``_seconds`` histograms):

* ``nnperf_requests_total{model, outcome}`` — finished inference requests (``ok`` or the error
  class name, e.g. ``InvalidInputError``, ``OverloadedError``).
* ``nnperf_request_failures_total{model, reason}`` — the failed subset.
* ``nnperf_request_duration_seconds{model}`` — data-plane latency of successful requests.
* ``nnperf_queue_duration_seconds{model}`` — per engine run: from the query's (or merged batch's)
  hand-over to the runtime until the engine started it.
* ``nnperf_compute_duration_seconds{model}`` — per engine run: time inside the engine.
* ``nnperf_batch_size{model}`` — per engine run: rows in the batch (the batches the dynamic
  batcher formed).
* ``nnperf_engine_failures_total{model}`` — engine runs that failed. A merged batch the engine
  fails counts once here, and the halves that run again to isolate the failing request count
  as runs (in ``nnperf_batch_size`` when they succeed, here when they fail).
* ``nnperf_inflight_requests{model}`` — requests inside the data plane now.
"""

from __future__ import annotations

from typing import Any

from nnperf.errors import MissingDependencyError

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS_S", "ServeMetrics"]

LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
"""Histogram bucket bounds for latencies, in seconds (100 µs to 10 s)."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Histogram bucket bounds for formed batch sizes, in rows."""


class ServeMetrics:
    """The data plane's Prometheus instruments, in a registry of their own.

    Raises:
        MissingDependencyError: ``prometheus_client`` is not installed (``nnperf[serve]``).
    """

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - the serve extra brings it
            raise MissingDependencyError("prometheus-client", "serve", "serving metrics") from exc
        self._prom = prom
        self.registry: Any = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = prom.Counter(
            "nnperf_requests", "Finished inference requests", ["model", "outcome"], registry=r
        )
        self.failures = prom.Counter(
            "nnperf_request_failures", "Failed inference requests", ["model", "reason"], registry=r
        )
        self.latency = prom.Histogram(
            "nnperf_request_duration_seconds",
            "Data-plane latency of successful inference requests",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.queue = prom.Histogram(
            "nnperf_queue_duration_seconds",
            "Per engine run: wait in the runtime before the engine started it",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.compute = prom.Histogram(
            "nnperf_compute_duration_seconds",
            "Per engine run: time inside the engine",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = prom.Histogram(
            "nnperf_batch_size",
            "Rows per engine run formed by the dynamic batcher",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.engine_failures = prom.Counter(
            "nnperf_engine_failures", "Engine runs that failed", ["model"], registry=r
        )
        self.inflight = prom.Gauge(
            "nnperf_inflight_requests", "Inference requests inside the data plane", ["model"],
            registry=r,
        )  # fmt: skip

        # Labelled children by (metric, labels): ``labels()`` costs a few µs per call (argument
        # checks, a lock), a dict lookup a tenth of that, and every request takes several.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:  # two threads may both build it: labels() returns the same child
            child = self._children[key] = metric.labels(*labels)
        return child

    def enter(self, model: str) -> None:
        """A request entered the data plane."""
        self._child(self.inflight, model).inc()

    def leave(self, model: str) -> None:
        """A request left the data plane."""
        self._child(self.inflight, model).dec()

    def observe_ok(self, model: str, latency_s: float) -> None:
        """Record one successful request and its data-plane latency."""
        self._child(self.requests, model, "ok").inc()
        self._child(self.latency, model).observe(latency_s)

    def observe_run(self, model: str, rows: int, *, queue_s: float, compute_s: float) -> None:
        """Record one engine run: rows in the formed batch, its wait and its engine time."""
        self._child(self.batch_size, model).observe(rows)
        self._child(self.queue, model).observe(queue_s)
        self._child(self.compute, model).observe(compute_s)

    def observe_run_failure(self, model: str) -> None:
        """Record one engine run that failed (a merged batch, a half of one, or one query)."""
        self._child(self.engine_failures, model).inc()

    def observe_failure(self, model: str, reason: str) -> None:
        """Record one failed request; ``reason`` is the error class name."""
        self._child(self.requests, model, reason).inc()
        self._child(self.failures, model, reason).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return self._prom.generate_latest(self.registry), str(self._prom.CONTENT_TYPE_LATEST)
