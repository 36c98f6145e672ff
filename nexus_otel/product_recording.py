"""Recording of product events: feature use, feedback, revenue and sessions.

A mixin of :class:`~nexus_otel.recorder.Recorder`, kept apart from the model
call path. Like everything the recorder does, none of it raises.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

from . import clock
from . import semconv as sc
from .aggregate import AggregatingMetrics, Key
from .cardinality import LabelGuard
from .events import FeatureUseEvent, FeedbackEvent, RevenueEvent, SessionEvent
from .sink import EventSink

__all__ = ["ProductRecording"]

_log = logging.getLogger("nexus_otel.recorder")
_OPEN_SESSIONS = 100_000  # session starts remembered to compute durations


class ProductRecording:
    metrics: AggregatingMetrics
    events: EventSink
    _recent: OrderedDict[str, tuple[Any, ...]]
    _recent_lock: threading.Lock
    _sessions: dict[str, float]
    _guard: LabelGuard

    _logged_stages: set[str]

    def drain(self) -> None:
        """Record calls still queued (see :class:`~nexus_otel.recorder.Recorder`)."""

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

    def _key(self, pairs: tuple[tuple[str, str | None], ...]) -> Key:
        fold = self._guard.fold
        return tuple((k, fold(k, v) if k != sc.SESSION_STATE else v) for k, v in pairs if v is not None)

    def _guarded(self, stage: str, fn: Any) -> None:
        try:
            fn()
        except Exception:
            self._internal_error(stage)

    def _emit(
        self, spec: sc.MetricSpec, pairs: tuple[tuple[str, str | None], ...], value: float, event: Any
    ) -> None:
        """Update one metric and queue the event that goes with it."""
        key = self._key(pairs)
        with self.metrics.lock:
            if spec.kind == "histogram":
                self.metrics.record(spec, key, value)
            else:
                self.metrics.add(spec, key, value)
        self.events.submit(event)

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
            self._emit(
                sc.FEATURE_USAGE,
                ((sc.FEATURE, feature), (sc.TEAM, team), (sc.PROJECT, project)),
                count,
                FeatureUseEvent(
                    timestamp=timestamp or clock.now(),
                    user_id=user_id,
                    session_id=session_id,
                    team=team,
                    project=project,
                    feature=feature,
                    count=count,
                ),
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
            self.drain()  # the call may still be queued: its labels are remembered once recorded
            with self._recent_lock:
                known = self._recent.get(request_id) or (None,) * 6
            # Feedback arrives later than its call: fill what the caller left out from that call.
            m_, p_, f_, t_, pr_, u_ = (
                given or remembered
                for given, remembered in zip(
                    (model, provider, feature, team, project, user_id), known, strict=True
                )
            )
            self._emit(
                sc.FEEDBACK_SCORE,
                (
                    (sc.REQUEST_MODEL, m_),
                    (sc.PROVIDER, p_),
                    (sc.FEATURE, f_),
                    (sc.TEAM, t_),
                    (sc.PROJECT, pr_),
                ),
                score,
                FeedbackEvent(
                    timestamp=timestamp or clock.now(),
                    request_id=request_id,
                    user_id=u_,
                    team=t_,
                    project=pr_,
                    feature=f_,
                    score=score,
                    model=m_,
                    provider=p_,
                    comment_length=comment_length,
                ),
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
            self._emit(
                sc.REVENUE,
                ((sc.PLAN, plan), (sc.TEAM, team), (sc.PROJECT, project)),
                amount_usd,
                RevenueEvent(
                    timestamp=timestamp or clock.now(),
                    user_id=user_id,
                    team=team,
                    project=project,
                    amount_usd=amount_usd,
                    plan=plan,
                ),
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
            now = timestamp or clock.now()
            duration = None
            if state == "started":
                self._sessions[session_id] = now
                if len(self._sessions) > _OPEN_SESSIONS:
                    # Sessions that never ended: forget the oldest start (its end gets no duration).
                    del self._sessions[next(iter(self._sessions))]
            else:
                started = self._sessions.pop(session_id, None)
                duration = now - started if started is not None else None
            self._emit(
                sc.SESSIONS,
                ((sc.SESSION_STATE, state), (sc.FEATURE, feature), (sc.TEAM, team), (sc.PROJECT, project)),
                1,
                SessionEvent(
                    timestamp=now,
                    session_id=session_id,
                    user_id=user_id,
                    team=team,
                    project=project,
                    feature=feature,
                    state=state,
                    duration_s=duration,
                ),
            )

        self._guarded("session", run)
