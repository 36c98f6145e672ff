"""In-process aggregation of nexus-otel's metrics.

Recording a number through the OpenTelemetry SDK validates and hashes the
attribute set on every call (~7 µs each in SDK 1.45). A tracked call records up
to a dozen numbers with one attribute set, so nexus-otel aggregates them itself
under one lock and hands the totals to OpenTelemetry at collection time: as
observable counters through the API (:mod:`nexus_otel.api_metrics`), or as
complete sum and histogram points when :func:`nexus_otel.configure` owns the SDK
(:mod:`nexus_otel.sdk_bridge`). No measurement is lost or approximated: every
histogram keeps exact bucket counts, sum, count, min and max.

A *key* is a tuple of ``(attribute, value)`` pairs, built once per call.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import time_ns

from .semconv import METRICS, MetricSpec

__all__ = ["AggregatingMetrics", "HistogramState", "Key", "Snapshot", "observe"]

Key = tuple[tuple[str, str], ...]


def observe(state: HistogramState, bounds: tuple[float, ...], value: float) -> None:
    """Record ``value`` in ``state`` (bucket upper ``bounds``)."""
    # OTel explicit buckets are upper-inclusive: bisect_left finds the first bound >= value.
    state.counts[bisect_left(bounds, value)] += 1
    state.sum += value
    state.count += 1
    # Comparisons, not min()/max(): those parse their arguments on every call.
    if value < state.min:  # noqa: PLR1730
        state.min = value
    if value > state.max:  # noqa: PLR1730
        state.max = value


class HistogramState:
    __slots__ = ("count", "counts", "max", "min", "sum")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * n_buckets
        self.sum = 0.0
        self.count = 0
        self.min = float("inf")
        self.max = float("-inf")

    def copy(self) -> HistogramState:
        other = HistogramState(0)
        other.counts = self.counts.copy()
        other.sum, other.count, other.min, other.max = self.sum, self.count, self.min, self.max
        return other


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of every series at one instant."""

    time_unix_nano: int
    start_time_unix_nano: int
    counters: dict[str, dict[Key, float]]
    histograms: dict[str, dict[Key, HistogramState]]


class AggregatingMetrics:
    """Cumulative sums and histograms keyed by attribute tuples.

    Callers hold :attr:`lock` around a group of :meth:`add`/:meth:`record`
    calls, so one tracked call costs one lock acquisition.
    """

    def __init__(self, specs: Iterable[MetricSpec] = METRICS) -> None:
        #: Called before every read (and :meth:`restore`): the deferring recorder records the
        #: calls still waiting, so a read sees every call that finished before it.
        self.before_read: Callable[[], None] | None = None
        self.lock = threading.Lock()
        self.specs = {s.name: s for s in specs}
        self.start_time_unix_nano = time_ns()
        self.epoch = 0  # bumped whenever series are replaced: handles taken before are stale
        # Each counter total sits in a one-element list, so a handle can update it in place.
        self._counters: dict[str, dict[Key, list[float]]] = {}
        self._histograms: dict[str, dict[Key, HistogramState]] = {}
        self._bounds: dict[str, tuple[float, ...]] = {}
        for spec in self.specs.values():
            if spec.kind == "counter":
                self._counters[spec.name] = {}
            elif spec.kind == "histogram":
                if not spec.buckets:
                    raise ValueError(f"histogram {spec.name} needs bucket boundaries")
                self._histograms[spec.name] = {}
                self._bounds[spec.name] = tuple(spec.buckets)

    def add(self, spec: MetricSpec, key: Key, value: float) -> None:
        self.counter_cell(spec, key)[0] += value

    # Series handles: a series key is a tuple of ~10 pairs whose hash Python recomputes on
    # every dict lookup. A holder of a key (:class:`~nexus_otel.series.CallHandles`) looks
    # its series up once, at its first use (so a series still appears only once something
    # is recorded in it), then updates the cell or state directly. Valid until
    # :meth:`restore`, which bumps :attr:`epoch`.
    def counter_cell(self, spec: MetricSpec, key: Key) -> list[float]:
        """The one-element list holding a counter series' total (created at zero); lock held."""
        series = self._counters[spec.name]
        cell = series.get(key)
        if cell is None:
            cell = series[key] = [0.0]
        return cell

    def histogram_state(self, spec: MetricSpec, key: Key) -> HistogramState:
        """The state of a histogram series (created empty); lock held."""
        series = self._histograms[spec.name]
        state = series.get(key)
        if state is None:
            state = series[key] = HistogramState(len(self._bounds[spec.name]) + 1)
        return state

    #: False for a subclass that records histograms elsewhere, through ``histogram(spec, key)``
    #: handles (:class:`~nexus_otel.api_metrics.ApiMetrics`).
    holds_histograms = True

    def record(self, spec: MetricSpec, key: Key, value: float) -> None:
        observe(self.histogram_state(spec, key), self._bounds[spec.name], value)

    def bounds(self, name: str) -> tuple[float, ...]:
        return self._bounds[name]

    def counter_items(self, name: str) -> list[tuple[Key, float]]:
        if self.before_read is not None:
            self.before_read()
        with self.lock:
            return [(key, cell[0]) for key, cell in self._counters[name].items()]

    def snapshot(self) -> Snapshot:
        if self.before_read is not None:
            self.before_read()
        with self.lock:
            return Snapshot(
                time_unix_nano=time_ns(),
                start_time_unix_nano=self.start_time_unix_nano,
                counters={
                    name: {key: cell[0] for key, cell in series.items()}
                    for name, series in self._counters.items()
                    if series
                },
                histograms={
                    name: {key: state.copy() for key, state in series.items()}
                    for name, series in self._histograms.items()
                    if series
                },
            )

    def restore(self, snapshot: Snapshot) -> None:
        """Continue from ``snapshot``'s totals and start time, replacing what is held.

        A process that takes over another's series (the demo's live traffic after
        its backfill) then exports one continuous cumulative series, exactly as a
        long-running application would, instead of a counter reset.
        """
        if self.before_read is not None:
            self.before_read()
        with self.lock:
            self.epoch += 1
            self.start_time_unix_nano = snapshot.start_time_unix_nano
            for name in self._counters:
                self._counters[name] = {k: [v] for k, v in snapshot.counters.get(name, {}).items()}
            for name in self._histograms:
                self._histograms[name] = {k: v.copy() for k, v in snapshot.histograms.get(name, {}).items()}
