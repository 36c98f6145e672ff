"""Weeks of demo history in seconds: the real decorators under a simulated clock.

Calls arrive as a Poisson process whose rate follows the simulator's daily and
weekly curve; each call runs at its own arrival time (so calls may overlap, as
in production) through ``track_model_call``, which writes the rollup through the
embedded sink. For the last part of the window the recorder's metrics are also
captured once per scrape step, as Prometheus would have scraped them from the
collector, into an OpenMetrics file for ``promtool tsdb create-blocks-from``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..aggregate import Snapshot
from .traffic import Incident, TrafficSimulator

__all__ = ["BackfillResult", "history_incidents", "mean_rate_factor", "run_backfill"]

DAY = 86400.0


def mean_rate_factor() -> float:
    """The simulator's traffic curve averaged over a week, to turn calls/day into a peak rate."""
    steps = 7 * 24 * 6
    return sum(TrafficSimulator.rate_factor(i * 600.0) for i in range(steps)) / steps


def history_incidents(start: float, end: float) -> tuple[Incident, ...]:
    """One of each incident in the history, at 14:00 UTC on days counted back from ``end``.

    Offsets are relative to ``start`` as :meth:`TrafficSimulator.apply_incidents` expects.
    Days that fall before ``start`` are skipped, so a short history has fewer incidents.
    """
    plan = (("errors", 5, 1.0), ("latency", 4, 2.0), ("usage_drop", 3, 3.0), ("cost_spike", 2, 3.0))
    last_day = math.floor(end / DAY) * DAY
    out = []
    for kind, days_back, hours in plan:
        at = last_day - days_back * DAY + 14 * 3600
        if at >= start:
            out.append(Incident(kind, at - start, hours * 3600))
    return tuple(out)


@dataclass(frozen=True)
class BackfillResult:
    calls: int
    errors: int
    start: float
    end: float
    samples: int  # OpenMetrics samples written (0 without a metrics file)
    seconds: float  # wall-clock time the backfill took
    metrics: Snapshot  # the recorder's totals at the end, for a live process to continue from


def run_backfill(
    *,
    rollup: Path,
    start: float,
    end: float,
    calls_per_day: float,
    seed: int = 7,
    users: int = 60,
    incidents: tuple[Incident, ...] | None = None,
    openmetrics: Path | None = None,
    metrics_windows: tuple[tuple[float, float], ...] | None = None,
    scrape_step_s: float = 120.0,
    service_name: str = "nexus-demo-app",
    service_instance_id: str = "demo-1",
    progress: Callable[[float], None] | None = None,
) -> BackfillResult:
    """Record simulated traffic from ``start`` to ``end`` into ``rollup`` (and ``openmetrics``).

    ``metrics_windows`` are the (from, to) spans captured for ``openmetrics`` once per
    ``scrape_step_s`` (default: the last 25 hours, enough for the anomaly rules'
    "same hour yesterday" bands; every scrape costs one line per series, so
    Prometheus history is kept shorter than the rollup's). ``progress`` is called
    with the done fraction (0..1) now and then.
    Uses :func:`nexus_otel.configure` and shuts it down before returning.
    """
    if not start < end:
        raise ValueError("start must be before end")
    if calls_per_day <= 0:
        raise ValueError("calls_per_day must be > 0")
    import nexus_otel

    from ..clock import SimulatedClock
    from ..sdk_bridge import AggregateProducer

    began = time.perf_counter()
    telemetry = nexus_otel.configure(
        rollup=str(rollup),
        service_name=service_name,
        service_instance_id=service_instance_id,
        event_flush_interval_s=1.0,
        event_batch_size=4096,
    )
    history = None
    if openmetrics is not None:
        from .history import OpenMetricsHistory

        history = OpenMetricsHistory()
    producer = AggregateProducer(telemetry.metrics, telemetry.resource)
    sim = TrafficSimulator(
        seed=seed,
        users=users,
        incidents=history_incidents(start, end) if incidents is None else incidents,
        live=True,  # latency passes on the simulated clock
        direct=True,
    )
    peak_rate = calls_per_day / DAY / mean_rate_factor()
    backlog = telemetry.settings.event_queue_size // 2
    windows = sorted(metrics_windows if metrics_windows is not None else ((end - 25 * 3600, end),))
    scrapes = iter(_scrape_times(windows, start=start, end=end, step=scrape_step_s))
    next_scrape = next(scrapes, math.inf)
    next_progress = 0.0
    samples = 0
    try:
        with SimulatedClock(start=start) as clock:
            t = start
            while True:
                t += sim.rng.expovariate(peak_rate * sim.rate_factor(t))
                while history is not None and next_scrape <= min(t, end):
                    history.snapshot(producer.merge(None), next_scrape)
                    next_scrape = next(scrapes, math.inf)
                if t >= end:
                    break
                clock.set(t)
                if sim.apply_incidents(t - start):
                    sim.one_call()
                if len(telemetry.events) >= backlog:
                    # an app's event queue drops when full (never blocks the app); a
                    # backfill must lose nothing, so it waits for the rollup instead
                    telemetry.events.flush(120.0)
                if progress is not None and t >= next_progress:
                    progress((t - start) / (end - start))
                    next_progress = t + (end - start) / 200
        if history is not None and openmetrics is not None:
            samples = history.write(openmetrics)
        final = telemetry.metrics.snapshot()
    finally:
        if history is not None:
            history.close()
        nexus_otel.shutdown()
    if progress is not None:
        progress(1.0)
    return BackfillResult(
        calls=sim.totals.calls,
        errors=sim.totals.errors,
        start=start,
        end=end,
        samples=samples,
        seconds=time.perf_counter() - began,
        metrics=final,
    )


def _scrape_times(
    windows: list[tuple[float, float]], *, start: float, end: float, step: float
) -> list[float]:
    """Scrape times every ``step`` inside each window, plus each window's end: the
    history's last sample then holds exactly the totals the live process continues from."""
    times: set[float] = set()
    for lo, hi in windows:
        t, stop = max(lo, start), min(hi, end)
        while t <= stop:
            times.add(round(t))
            t += step
        if stop >= max(lo, start):
            times.add(math.floor(stop))
    return sorted(times)
