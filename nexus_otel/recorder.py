"""The recorder: prices a finished call once, folds labels, updates metrics, emits the event.

Everything the tracking code, the client integrations and the business-event
helpers know ends up here. Failures inside the recorder are swallowed, counted
as ``nexus.instrumentation.errors`` and logged once per stage: instrumentation
never breaks the call it observes.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict, deque
from datetime import date
from typing import TYPE_CHECKING, Any

from . import clock
from . import semconv as sc
from .aggregate import AggregatingMetrics, Key
from .cardinality import DEFAULT_MAX_VALUES, LabelGuard
from .events import Event
from .product_recording import ProductRecording
from .record import CallRecord, call_event_values
from .series import KEY_CACHE_SIZE, CallHandles, SeriesKeys, day_date, pricing_key
from .sink import EventSink

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from .pricing import PriceTable

__all__ = ["Recorder", "get_recorder", "set_recorder"]

_log = logging.getLogger(__name__)
_TRUE, _FALSE = "true", "false"
_RECENT_CALLS = 10_000  # request ids remembered so feedback can be attributed to its call


class Recorder(ProductRecording):
    """Turns finished calls and business events into metrics and events.

    ``metrics`` defaults to :class:`~nexus_otel.api_metrics.ApiMetrics` on
    ``meter_provider`` (or the global one), so an app that runs its own SDK gets
    nexus-otel's instruments there. :func:`nexus_otel.configure` passes a plain
    :class:`AggregatingMetrics` instead and bridges it into the SDK it builds.

    With ``deferred=True`` (what :func:`nexus_otel.configure` uses) a finished call is
    only queued on the caller's thread; the event thread records queued calls in
    batches, where the recording code and data stay in the CPU caches (measured: the
    calling thread pays about half, the process about a quarter less in all). Every
    read of ``metrics`` (a scrape, an export, a snapshot), :meth:`flush` of the events
    and feedback on a call record the queued calls first, so a read sees every call
    that finished before it. Should the queue reach the event queue's size, the caller
    records the backlog itself: calls are never dropped.
    """

    def __init__(
        self,
        *,
        metrics: AggregatingMetrics | None = None,
        meter_provider: MeterProvider | None = None,
        prices: PriceTable | None = None,
        events: EventSink | None = None,
        max_label_values: int = DEFAULT_MAX_VALUES,
        label_caps: dict[str, int] | None = None,
        deferred: bool = False,
    ) -> None:
        if deferred and metrics is None:
            raise ValueError("deferred recording needs the recorder's own AggregatingMetrics")
        if metrics is None:
            from opentelemetry import metrics as otel_metrics

            from .api_metrics import ApiMetrics
            from .version import __version__

            provider = meter_provider or otel_metrics.get_meter_provider()
            metrics = ApiMetrics(provider.get_meter(sc.INSTRUMENTATION_SCOPE, __version__))
        self.metrics = metrics
        if events is None:
            from .api_events import ApiEventExporter

            events = EventSink([ApiEventExporter()])
        self.events = events
        if self.events._on_drop is None:
            self.events._on_drop = self._count_dropped_events
        self._prices = prices
        self._guard = LabelGuard(max_values=max_label_values, per_label=label_caps, on_fold=self._count_fold)
        self._logged_stages: set[str] = set()
        self._recent: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._keys: dict[tuple[Any, ...], SeriesKeys] = {}
        self._deferred = deferred
        self._pending: deque[CallRecord] = deque()
        self._handover_at = min(self.events.batch_size, self.events.max_queue)
        if deferred:
            if metrics.before_read is not None:
                raise ValueError("these metrics already belong to a deferring recorder")
            metrics.before_read = self.drain
            self.events.add_producer(self.drain)
            ref = weakref.ref(self)
            # Calls queued in the parent are the parent's to record.
            os.register_at_fork(after_in_child=lambda: (r := ref()) is not None and r._pending.clear())

    # -- model calls ------------------------------------------------------------
    def record_call(self, rec: CallRecord) -> None:
        """Record one finished call (or queue it, when deferred). Never raises."""
        if self._deferred:
            pending = self._pending
            pending.append(rec)
            if len(pending) >= self._handover_at:
                if len(pending) >= self.events.max_queue:
                    self.drain()
                else:
                    self.events.wake()
            return
        try:
            self._record_call(rec)
        except Exception:
            self._internal_error("record_call")

    def drain(self) -> None:
        """Record every queued call now (deferred mode; a no-op otherwise). Never raises."""
        pending = self._pending
        record = self._record_call
        while pending:
            try:
                rec = pending.popleft()
            except IndexError:  # another thread took the last one
                return
            try:
                record(rec)
            except Exception:
                self._internal_error("record_call")

    def _record_call(self, rec: CallRecord) -> None:
        cache_key = (
            rec.operation,
            rec.provider,
            rec.model,
            rec.response_model,
            rec.server_address,
            rec.feature,
            rec.team,
            rec.project,
            rec.routed,
        )
        keys = self._keys.get(cache_key)
        if keys is None:
            keys = self._build_keys(rec)
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[cache_key] = keys
        base = keys.base
        provider, model, response_model, feature, team, project = keys.labels
        routed = _TRUE if rec.routed else _FALSE
        failed = rec.error_type is not None
        usage = rec.usage
        cost = baseline = None
        priced = True
        if usage is not None and (usage.input_tokens or usage.output_tokens):
            day = int((rec.start_time or clock.now()) // 86400)
            cached = keys.price
            if cached is not None and cached[0] == day:
                price = cached[1]
            else:
                # Prices change at most daily: one lookup per label combination and day.
                price = self._price(rec.provider, rec.response_model or rec.model, rec.model, day_date(day))
                keys.price = (day, price)
            cost = None if price is None else (_price_floats_fn or _price_floats())(price, usage)
            priced = cost is not None
            if rec.routed and rec.baseline_model and cost is not None:
                baseline = self._cost(rec.provider, rec.baseline_model, None, usage, day_date(day))
        duration_key = keys.success if not failed else (*keys.error, (sc.ERROR_TYPE, rec.error_type))
        baseline_model = None
        if rec.routed or rec.baseline_model is not None:
            baseline_model = self._guard.fold(sc.REQUEST_MODEL, rec.baseline_model or rec.model)
        m = self.metrics
        with m.lock:
            handles = keys.handles
            if handles is None or handles.epoch != m.epoch:
                handles = keys.handles = CallHandles(m, keys)
            for label in keys.folded:
                # Counted per measurement, like the first time this label set was folded.
                m.add(sc.LABELS_FOLDED, ((sc.LABEL, label),), 1)
            if failed:
                m.record(sc.OPERATION_DURATION, duration_key, rec.duration_s)
            handles.record(None if failed else rec.duration_s, rec.ttft_s, usage, cost)
            if cost is None and usage is not None and (usage.input_tokens or usage.output_tokens):
                m.add(sc.PRICING_MISSES, pricing_key(provider, model, response_model), 1)
            if baseline_model is not None:
                router_key = tuple(
                    (k, v)
                    for k, v in (
                        (sc.PROVIDER, provider),
                        (sc.REQUEST_MODEL, model),
                        (sc.BASELINE_MODEL, baseline_model),
                        (sc.FEATURE, feature),
                        (sc.TEAM, team),
                        (sc.PROJECT, project),
                    )
                    if v is not None
                )
                m.add(sc.ROUTER_DECISIONS, (*router_key, (sc.ROUTED, routed)), 1)
                if rec.router_confidence is not None:
                    m.record(sc.ROUTER_CONFIDENCE, router_key, rec.router_confidence)
                if rec.routed and cost is not None:
                    if baseline is None:
                        # An unpriced baseline saves nothing we can prove: no guessed savings.
                        m.add(sc.PRICING_MISSES, pricing_key(provider, baseline_model, None), 1)
                    m.add(
                        sc.ROUTER_BASELINE_COST,
                        (*base, (sc.BASELINE_MODEL, baseline_model)),
                        (baseline or cost)[5],
                    )
        if rec.request_id:  # kept so feedback on this call is attributed to its labels
            recent = self._recent
            recent[rec.request_id] = (rec.model, rec.provider, feature, team, project, rec.user_id)
            if len(recent) > _RECENT_CALLS:
                self._evict_recent()
        events = self.events
        if events.exporters:
            events.submit(call_event_values(rec, cost, baseline, priced))

    def _build_keys(self, rec: CallRecord) -> SeriesKeys:
        """Fold the labels of a new label combination and precompute every series key for it."""
        folded: list[str] = []

        def fold(label: str, value: str | None) -> str | None:
            out = self._guard.fold(label, value, notify=False)
            if out != value:
                folded.append(label)
            return out

        labels = (
            fold(sc.PROVIDER, rec.provider),
            fold(sc.REQUEST_MODEL, rec.model),
            fold(sc.RESPONSE_MODEL, rec.response_model),
            fold(sc.FEATURE, rec.feature),
            fold(sc.TEAM, rec.team),
            fold(sc.PROJECT, rec.project),
        )
        provider, model, response_model, feature, team, project = labels
        base: Key = tuple(
            (k, v)
            for k, v in (
                (sc.OPERATION, rec.operation),
                (sc.PROVIDER, provider),
                (sc.REQUEST_MODEL, model),
                (sc.RESPONSE_MODEL, response_model),
                (sc.SERVER_ADDRESS, rec.server_address),
                (sc.FEATURE, feature),
                (sc.TEAM, team),
                (sc.PROJECT, project),
            )
            if v is not None
        )
        # Folds are counted per recorded call (in _record_call), not here.
        return SeriesKeys(base, _TRUE if rec.routed else _FALSE, labels, tuple(folded))

    def _price(self, provider: str, model: str, fallback_model: str | None, at: date) -> Any:
        prices = self._prices
        if prices is None:
            from .pricing import get_default_table

            prices = self._prices = get_default_table()
        price = prices.lookup(provider=provider, model=model, at=at)
        if price is None and fallback_model and fallback_model != model:
            price = prices.lookup(provider=provider, model=fallback_model, at=at)
        return price

    def _cost(
        self, provider: str, model: str, fallback_model: str | None, usage: Any, at: date
    ) -> tuple[float, ...] | None:
        """Cost by :data:`~nexus_otel.semconv.COST_TYPES` then the total, as floats, or None (unpriced)."""
        price = self._price(provider, model, fallback_model, at)
        return None if price is None else _price_floats()(price, usage)

    def _evict_recent(self) -> None:
        recent = self._recent
        with self._recent_lock:  # only eviction needs it: one dict store is atomic
            while len(recent) > _RECENT_CALLS:
                recent.popitem(last=False)

    # -- business events ----------------------------------------------------------
    def submit_event(self, event: Event) -> None:
        """Queue an already-built event (used by backfills and replays)."""
        self._guarded("event", lambda: self.events.submit(event))

    # -- plumbing ---------------------------------------------------------------
    def _count_fold(self, label: str) -> None:
        with self.metrics.lock:
            self.metrics.add(sc.LABELS_FOLDED, ((sc.LABEL, label),), 1)

    def _count_dropped_events(self, reason: str, n: int) -> None:
        with self.metrics.lock:
            self.metrics.add(sc.EVENTS_DROPPED, ((sc.DROP_REASON, reason),), n)


_price_floats_fn: Any = None


def _price_floats() -> Any:
    # Imported on first use: ``import nexus_otel`` stays free of the pricing code.
    global _price_floats_fn
    if _price_floats_fn is None:
        from .pricing.cost import price_floats

        _price_floats_fn = price_floats
    return _price_floats_fn


_current: Recorder | None = None
_current_lock = threading.Lock()


def get_recorder() -> Recorder:
    """The process-wide recorder: the one :func:`nexus_otel.configure` built, else an API one."""
    global _current
    recorder = _current
    if recorder is None:
        with _current_lock:
            if _current is None:
                _current = Recorder()
            recorder = _current
    return recorder


def set_recorder(recorder: Recorder | None) -> Recorder | None:
    """Install ``recorder`` process-wide; returns the previous one."""
    global _current
    with _current_lock:
        previous, _current = _current, recorder
    return previous
