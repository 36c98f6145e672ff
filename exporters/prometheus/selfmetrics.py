"""The collector's own metrics, in a prometheus-client registry rendered after the series store.

Budget gauges (``exporters.budgets``) register into the same registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

__all__ = ["COMMIT_BUCKETS", "CollectorMetrics"]

COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class CollectorMetrics:
    """``nexus_collector_*`` counters, gauges and the rollup commit latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches_received = Counter(
            "nexus_collector_batches_received",
            "OTLP export requests accepted, by signal.",
            ["signal"],
            registry=r,
        )
        self.events_received = Counter(
            "nexus_collector_events_received",
            "Events decoded from OTLP log records and committed.",
            registry=r,
        )
        self.rejected = Counter(
            "nexus_collector_rejected",
            "Requests, data points and log records refused, by signal and reason.",
            ["signal", "reason"],
            registry=r,
        )
        self.rollup_commit_seconds = Histogram(
            "nexus_collector_rollup_commit_seconds",
            "Time to commit one event batch to the rollup.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "nexus_collector_queue_depth", "Event batches waiting for the rollup writer.", registry=r
        )
        self.series = Gauge("nexus_collector_series", "Series held for /metrics.", registry=r)
        self.series_dropped = Counter(
            "nexus_collector_series_dropped",
            "Series removed from /metrics, by reason.",
            ["reason"],
            registry=r,
        )
        self.labels_folded = Counter(
            "nexus_collector_labels_folded",
            "Source series whose attribution label value was folded into 'other' by the cap.",
            ["label"],
            registry=r,
        )

    def render(self, *, openmetrics: bool) -> str:
        """This registry's exposition; the OpenMetrics one ends with ``# EOF``."""
        if openmetrics:
            return generate_openmetrics(self.registry).decode()
        return generate_latest(self.registry).decode()
