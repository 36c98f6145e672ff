"""Assemble the collector from its config and serve it with waitress.

SIGTERM and SIGINT stop accepting connections, let in-flight requests finish
(their event batches commit before they are acknowledged), then close the
rollup writer and the budget watcher so everything written is flushed.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from nexus_otel.cardinality import LabelGuard

from .app import CollectorApp, EventSink, ReadinessCheck
from .config import CollectorConfig
from .otlp import MetricsIngest
from .prometheus import CollectorMetrics, CostDeriver, SeriesStore

__all__ = ["Collector", "build_collector", "serve"]

log = logging.getLogger("nexus_otel.collector")


@dataclass
class Collector:
    app: CollectorApp
    closers: list[Callable[[], object]] = field(default_factory=list)

    def close(self) -> None:
        """Flush and close what the collector opened, last opened first."""
        while self.closers:
            closer = self.closers.pop()
            try:
                closer()
            except Exception:
                log.exception("error while closing the collector")


def build_collector(
    config: CollectorConfig, *, event_sink: EventSink | None = None, install_signal_handlers: bool = False
) -> Collector:
    """The WSGI app with its store, self-metrics, rollup writer and budgets, as ``config`` says.

    ``event_sink`` replaces the rollup writer ``config.rollup`` would open.
    ``install_signal_handlers`` (main thread only) makes SIGHUP reload the budgets.
    """
    metrics = CollectorMetrics()
    cost = CostDeriver()
    guard = LabelGuard(
        max_values=config.max_label_values, on_fold=lambda label: metrics.labels_folded.labels(label).inc()
    )
    store = SeriesStore(
        series_ttl_s=config.series_ttl_s,
        label_guard=guard,
        on_drop=lambda reason, n: metrics.series_dropped.labels(reason).inc(n),
        on_sender_expired=cost.forget,
    )
    closers: list[Callable[[], object]] = []
    readiness: list[ReadinessCheck] = []
    if event_sink is None and config.rollup:
        event_sink = _open_rollup(config, closers, readiness)
    if config.rollup:
        from .activity_metrics import ActiveUsersCollector

        metrics.registry.register(ActiveUsersCollector(config.rollup))
    if config.budgets:
        _open_budgets(config, metrics, closers, readiness, install_sighup=install_signal_handlers)
    app = CollectorApp(
        store=store,
        ingest=MetricsIngest(store, cost=cost),
        metrics=metrics,
        event_sink=event_sink,
        max_body_bytes=config.max_body_bytes,
        auth_token=config.auth_token(),
        readiness=readiness,
    )
    return Collector(app, closers)


def _open_rollup(
    config: CollectorConfig, closers: list[Callable[[], object]], readiness: list[ReadinessCheck]
) -> EventSink:
    from .rollup import ProcessWriter, RollupWriter, SpooledWriter

    path = config.rollup
    if not config.spool:
        # commits in a committer process, so decoding and SQLite each get a core
        direct = ProcessWriter(path, retention_days=config.retention_days or None)
        readiness.append(lambda: None if direct.ready() else f"rollup {path}: the committer is not running")
        closers.append(direct.close)
        return direct
    writer = RollupWriter(path, retention_days=config.retention_days or None)
    readiness.append(lambda: None if writer.ready() else f"rollup {path} is not writable")
    spooled = SpooledWriter(writer, config.spool)  # replays what a previous run left behind
    closers.append(spooled.close)  # commits everything spooled, then closes the writer
    return spooled


def _open_budgets(
    config: CollectorConfig,
    metrics: CollectorMetrics,
    closers: list[Callable[[], object]],
    readiness: list[ReadinessCheck],
    *,
    install_sighup: bool,
) -> None:
    from .budgets import BudgetCollector, BudgetManager

    manager = BudgetManager(config.budgets, rollup=config.rollup, install_sighup=install_sighup)
    metrics.registry.register(BudgetCollector(manager))
    closers.append(manager.close)
    readiness.append(lambda: None if manager.loaded else f"budgets {config.budgets} not loaded")


def serve(config: CollectorConfig) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    from waitress import create_server

    collector = build_collector(config, install_signal_handlers=True)
    server = create_server(
        collector.app,
        host=config.host,
        port=config.port,
        threads=config.threads,
        # waitress buffers a body before the app runs: never more than the OTLP limit
        max_request_body_size=config.max_body_bytes,
        ident="nexus-otel-collector",
        channel_timeout=60,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress' loop closes its sockets and drains its task queue

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(
        f"nexus-otel collector listening on http://{config.host}:{server.effective_port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    finally:
        server.close()
        collector.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("collector stopped")
