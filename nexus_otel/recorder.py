"""The recorder: prices a finished call once, folds labels, updates metrics, emits the event.

Everything the tracking code, the client integrations and the business-event
helpers know ends up here. Failures inside the recorder are swallowed, counted
as ``nexus.instrumentation.errors`` and logged once per stage: instrumentation
never breaks the call it observes.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from datetime import date
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from .aggregate import AggregatingMetrics, Key
from .cardinality import DEFAULT_MAX_VALUES, LabelGuard
from .events import Event, FeatureUseEvent, FeedbackEvent, ModelCallEvent, RevenueEvent, SessionEvent
from .record import CallRecord
from .sink import EventSink

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from .pricing import PriceTable

__all__ = ["PendingCallEvent", "Recorder", "get_recorder", "set_recorder"]

_log = logging.getLogger(__name__)
_TRUE, _FALSE = "true", "false"
_RECENT_CALLS = 10_000  # request ids remembered so feedback can be attributed to its call


class Recorder:
    """Turns finished calls and business events into metrics and events.

    ``metrics`` defaults to :class:`~nexus_otel.api_metrics.ApiMetrics` on
    ``meter_provider`` (or the global one), so an app that runs its own SDK gets
    nexus-otel's instruments there. :func:`nexus_otel.configure` passes a plain
    :class:`AggregatingMetrics` instead and bridges it into the SDK it builds.
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
    ) -> None:
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
        self._keys: dict[tuple[Any, ...], _Keys] = {}

    # -- model calls ------------------------------------------------------------
    def record_call(self, rec: CallRecord) -> None:
        """Record one finished call. Never raises."""
        try:
            self._record_call(rec)
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
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[cache_key] = keys
        base = keys.base
        provider, model, response_model, feature, team, project = keys.labels
        routed = _TRUE if rec.routed else _FALSE
        failed = rec.error_type is not None
        usage = rec.usage
        cost = baseline = None
        priced = True
        at = _utc_day(rec.start_time or time.time())
        if usage is not None and usage.total_tokens:
            cost = self._cost(rec.provider, rec.response_model or rec.model, rec.model, usage, at)
            priced = cost is not None
            if rec.routed and rec.baseline_model and cost is not None:
                baseline = self._cost(rec.provider, rec.baseline_model, None, usage, at)
        duration_key = keys.success if not failed else (*keys.error, (sc.ERROR_TYPE, rec.error_type))
        baseline_model = None
        if rec.routed or rec.baseline_model is not None:
            baseline_model = self._guard.fold(sc.REQUEST_MODEL, rec.baseline_model or rec.model)
        m = self.metrics
        with m.lock:
            for label in keys.folded:
                # Counted per measurement, like the first time this label set was folded.
                m.add(sc.LABELS_FOLDED, ((sc.LABEL, label),), 1)
            m.record(sc.OPERATION_DURATION, duration_key, rec.duration_s)
            if rec.ttft_s is not None:
                m.record(sc.TIME_TO_FIRST_CHUNK, keys.ttft, rec.ttft_s)
            if usage is not None:
                m.record(sc.TOKEN_USAGE, keys.input_tokens, usage.input_tokens)
                m.record(sc.TOKEN_USAGE, keys.output_tokens, usage.output_tokens)
                detailed = keys.detailed
                if usage.cache_read_tokens:
                    m.add(sc.TOKENS_DETAILED, detailed["cache_read"], usage.cache_read_tokens)
                if usage.cache_write_5m_tokens:
                    m.add(sc.TOKENS_DETAILED, detailed["cache_write_5m"], usage.cache_write_5m_tokens)
                if usage.cache_write_1h_tokens:
                    m.add(sc.TOKENS_DETAILED, detailed["cache_write_1h"], usage.cache_write_1h_tokens)
                if usage.reasoning_tokens:
                    m.add(sc.TOKENS_DETAILED, detailed["reasoning"], usage.reasoning_tokens)
                if cost is not None:
                    cost_keys = keys.cost
                    for cost_type, usd in cost.as_floats().items():
                        if usd:
                            m.add(sc.COST, cost_keys[cost_type], usd)
                elif usage.total_tokens:
                    m.add(sc.PRICING_MISSES, _pricing_key(provider, model, response_model), 1)
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
                        m.add(sc.PRICING_MISSES, _pricing_key(provider, baseline_model, None), 1)
                    m.add(
                        sc.ROUTER_BASELINE_COST,
                        (*base, (sc.BASELINE_MODEL, baseline_model)),
                        float((baseline or cost).total),
                    )
        self._remember(rec, feature, team, project)
        self.events.submit(PendingCallEvent(rec, cost, baseline, priced))

    def _build_keys(self, rec: CallRecord) -> _Keys:
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
        return _Keys(base, _TRUE if rec.routed else _FALSE, labels, tuple(folded))

    def _cost(self, provider: str, model: str, fallback_model: str | None, usage: Any, at: date) -> Any:
        prices = self._prices
        if prices is None:
            from .pricing import get_default_table

            prices = self._prices = get_default_table()
        cost = prices.cost(provider=provider, model=model, usage=usage, at=at)
        if cost is None and fallback_model and fallback_model != model:
            cost = prices.cost(provider=provider, model=fallback_model, usage=usage, at=at)
        return cost

    def _remember(self, rec: CallRecord, feature: str | None, team: str | None, project: str | None) -> None:
        if not rec.request_id:
            return
        with self._recent_lock:
            self._recent[rec.request_id] = (rec.model, rec.provider, feature, team, project, rec.user_id)
            if len(self._recent) > _RECENT_CALLS:
                self._recent.popitem(last=False)

    # -- business events ----------------------------------------------------------
    def record_feature_use(
        self,
        *,
        feature: str,
        count: int = 1,
        user_id: str | None = None,
        session_id: str | None = None,
        team: str | None = None,
        project: str | None = None,
        timestamp: float | None = None,
    ) -> None:
        def run() -> None:
            key = self._key(((sc.FEATURE, feature), (sc.TEAM, team), (sc.PROJECT, project)))
            with self.metrics.lock:
                self.metrics.add(sc.FEATURE_USAGE, key, count)
            self.events.submit(
                FeatureUseEvent(
                    timestamp=timestamp or time.time(),
                    user_id=user_id,
                    session_id=session_id,
                    team=team,
                    project=project,
                    feature=feature,
                    count=count,
                )
            )

        self._guarded("feature_use", run)

    def record_feedback(
        self,
        *,
        request_id: str,
        score: float,
        user_id: str | None = None,
        comment_length: int | None = None,
        model: str | None = None,
        provider: str | None = None,
        feature: str | None = None,
        team: str | None = None,
        project: str | None = None,
        timestamp: float | None = None,
    ) -> None:
        def run() -> None:
            with self._recent_lock:
                known = self._recent.get(request_id) or (None,) * 6
            # Feedback arrives later than its call: fill what the caller left out from that call.
            m_, p_, f_, t_, pr_, u_ = (
                given or remembered
                for given, remembered in zip(
                    (model, provider, feature, team, project, user_id), known, strict=True
                )
            )
            key = self._key(
                (
                    (sc.REQUEST_MODEL, m_),
                    (sc.PROVIDER, p_),
                    (sc.FEATURE, f_),
                    (sc.TEAM, t_),
                    (sc.PROJECT, pr_),
                )
            )
            with self.metrics.lock:
                self.metrics.record(sc.FEEDBACK_SCORE, key, score)
            self.events.submit(
                FeedbackEvent(
                    timestamp=timestamp or time.time(),
                    request_id=request_id,
                    user_id=u_,
                    team=t_,
                    project=pr_,
                    feature=f_,
                    score=score,
                    model=m_,
                    provider=p_,
                    comment_length=comment_length,
                )
            )

        self._guarded("feedback", run)

    def record_revenue(
        self,
        *,
        user_id: str | None,
        amount_usd: float,
        plan: str | None = None,
        team: str | None = None,
        project: str | None = None,
        timestamp: float | None = None,
    ) -> None:
        def run() -> None:
            key = self._key(((sc.PLAN, plan), (sc.TEAM, team), (sc.PROJECT, project)))
            with self.metrics.lock:
                self.metrics.add(sc.REVENUE, key, amount_usd)
            self.events.submit(
                RevenueEvent(
                    timestamp=timestamp or time.time(),
                    user_id=user_id,
                    team=team,
                    project=project,
                    amount_usd=amount_usd,
                    plan=plan,
                )
            )

        self._guarded("revenue", run)

    def record_session(
        self,
        *,
        session_id: str,
        state: str,
        user_id: str | None = None,
        feature: str | None = None,
        team: str | None = None,
        project: str | None = None,
        timestamp: float | None = None,
    ) -> None:
        def run() -> None:
            now = timestamp or time.time()
            duration = None
            if state == "started":
                self._sessions[session_id] = now
            else:
                started = self._sessions.pop(session_id, None)
                duration = now - started if started is not None else None
            key = self._key(
                ((sc.SESSION_STATE, state), (sc.FEATURE, feature), (sc.TEAM, team), (sc.PROJECT, project))
            )
            with self.metrics.lock:
                self.metrics.add(sc.SESSIONS, key, 1)
            self.events.submit(
                SessionEvent(
                    timestamp=now,
                    session_id=session_id,
                    user_id=user_id,
                    team=team,
                    project=project,
                    feature=feature,
                    state=state,
                    duration_s=duration,
                )
            )

        self._guarded("session", run)

    def submit_event(self, event: Event) -> None:
        """Queue an already-built event (used by backfills and replays)."""
        self._guarded("event", lambda: self.events.submit(event))

    # -- plumbing ---------------------------------------------------------------
    def _key(self, pairs: tuple[tuple[str, str | None], ...]) -> Key:
        fold = self._guard.fold
        return tuple((k, fold(k, v) if k != sc.SESSION_STATE else v) for k, v in pairs if v is not None)

    def _guarded(self, stage: str, fn: Any) -> None:
        try:
            fn()
        except Exception:
            self._internal_error(stage)

    def _count_fold(self, label: str) -> None:
        with self.metrics.lock:
            self.metrics.add(sc.LABELS_FOLDED, ((sc.LABEL, label),), 1)

    def _count_dropped_events(self, reason: str, n: int) -> None:
        with self.metrics.lock:
            self.metrics.add(sc.EVENTS_DROPPED, ((sc.DROP_REASON, reason),), n)

    def _internal_error(self, stage: str) -> None:
        try:
            with self.metrics.lock:
                self.metrics.add(sc.INSTRUMENTATION_ERRORS, ((sc.ERROR_STAGE, stage),), 1)
            if stage not in self._logged_stages:
                self._logged_stages.add(stage)
                _log.exception(
                    "nexus-otel failed while recording (%s); further failures are only counted", stage
                )
        except Exception:  # pragma: no cover - last line of defence
            pass


_KEY_CACHE_SIZE = 10_000


class _Keys:
    """Every series key one label combination needs, built once."""

    __slots__ = (
        "base",
        "cost",
        "detailed",
        "error",
        "folded",
        "input_tokens",
        "labels",
        "output_tokens",
        "success",
        "ttft",
    )

    def __init__(
        self, base: Key, routed: str, labels: tuple[str | None, ...], folded: tuple[str, ...]
    ) -> None:
        r = (sc.ROUTED, routed)
        self.base = base
        self.labels = labels
        self.folded = folded
        self.success = (*base, (sc.OUTCOME, sc.OUTCOME_SUCCESS), r)
        self.error = (*base, (sc.OUTCOME, sc.OUTCOME_ERROR), r)
        self.ttft = (*base, r)
        self.input_tokens = (*base, (sc.TOKEN_TYPE, "input"), r)
        self.output_tokens = (*base, (sc.TOKEN_TYPE, "output"), r)
        self.detailed = {t: (*base, (sc.DETAILED_TOKEN_TYPE, t)) for t in sc.DETAILED_TOKEN_TYPES}
        self.cost = {t: (*base, (sc.COST_TYPE, t), r) for t in sc.COST_TYPES}


class PendingCallEvent:
    """A finished call waiting in the event queue; the event object is built on the export thread."""

    __slots__ = ("baseline", "cost", "priced", "rec")

    def __init__(self, rec: CallRecord, cost: Any, baseline: Any, priced: bool) -> None:
        self.rec, self.cost, self.baseline, self.priced = rec, cost, baseline, priced

    def materialize(self) -> ModelCallEvent:
        rec, usage, cost = self.rec, self.rec.usage, self.cost
        routed_cost = (self.baseline or cost) if rec.routed and cost is not None else None
        return ModelCallEvent(
            timestamp=rec.start_time,
            request_id=rec.request_id,
            user_id=rec.user_id,
            session_id=rec.session_id,
            team=rec.team,
            project=rec.project,
            feature=rec.feature,
            model=rec.model,
            response_model=rec.response_model,
            provider=rec.provider,
            operation=rec.operation,
            server_address=rec.server_address,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cache_read_tokens=usage.cache_read_tokens if usage else 0,
            cache_write_tokens=usage.cache_write_tokens if usage else 0,
            reasoning_tokens=usage.reasoning_tokens if usage else 0,
            cost_usd=float(cost.total) if cost is not None else None,
            baseline_cost_usd=float(routed_cost.total) if routed_cost is not None else None,
            priced=self.priced,
            latency_s=rec.duration_s,
            ttft_s=rec.ttft_s,
            streamed=rec.streamed,
            outcome=sc.OUTCOME_ERROR if rec.error_type is not None else sc.OUTCOME_SUCCESS,
            error_type=rec.error_type,
            routed=rec.routed,
            routed_from=rec.baseline_model,
            router_confidence=rec.router_confidence,
        )


@functools.lru_cache(maxsize=64)
def _day(day_number: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + day_number)


def _utc_day(unix_seconds: float) -> date:
    """The UTC calendar day of a timestamp: prices change at most daily, so this is all pricing needs."""
    return _day(int(unix_seconds // 86400))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _pricing_key(provider: str | None, model: str | None, response_model: str | None) -> Key:
    return tuple(
        (k, v)
        for k, v in ((sc.PROVIDER, provider), (sc.REQUEST_MODEL, model), (sc.RESPONSE_MODEL, response_model))
        if v is not None
    )


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
