"""The recommender's gauges for Prometheus (``GET /metrics``).

Computed from the rollup in a background thread and reused for
``metrics_cache_s`` seconds: insights over 90 days (and the anomaly detection
they trigger) take far longer than a scrape timeout, so a scrape returns the
last computed gauges at once and starts a recomputation when they are stale.
Only the very first scrape waits (up to :data:`FIRST_WAIT_S`) for an answer.
The user and savings gauges take the precomputer's admin answers (analytics
for 30 and 90 days, recommendations for 30) when it has them: the dashboard
then shows what the API serves, and nothing is computed twice.
Labels are bounded: detectors x scopes the detectors chose, the top-N
recommendations by rank, the 20 most used features.

``nexus_anomaly_score`` is 0..1: the latest hour's percentile among its
scope's stored scores, lifted to at least 0.9 when the detector flagged the
hour and capped below 0.9 when it did not, so the ``NexusLearnedAnomaly`` rule
(``>= 0.9``) fires exactly on flagged hours.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nexus_otel import clock

from .auth import Principal
from .params import Query, parse_query
from .precompute import Precomputer, cache_key
from .store.reader import Rollup

__all__ = ["InsightsCollector"]

log = logging.getLogger(__name__)
MAX_FEATURES = 20
RETENTION_WEEKS = (1, 2, 4)
FIRST_WAIT_S = 5.0
_ADMIN = Principal("metrics", "admin")


def _range(days: int, now: float) -> Query:
    return parse_query({"period": f"{days}d"}, now=now)


class InsightsCollector(Collector):
    """The gauges; recommendations come from ``precomputed``'s admin 30-day answer when it has one."""

    def __init__(
        self, rollup: Rollup, settings: dict[str, Any], *, precomputed: Precomputer | None = None
    ) -> None:
        self.rollup = rollup
        self.settings = settings
        self.precomputed = precomputed
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None
        self._worker: threading.Thread | None = None
        self._errors: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cached = self._cached
            stale = cached is None or time.monotonic() - cached[0] >= self.settings["metrics_cache_s"]
            if stale and self._worker is None:
                self._worker = threading.Thread(target=self._refresh, name="nexus-insights", daemon=True)
                self._worker.start()
            worker = self._worker
        if cached is None and worker is not None:
            worker.join(FIRST_WAIT_S)
        with self._lock:
            families = list(self._cached[1]) if self._cached else []
        errors = CounterMetricFamily(
            "nexus_recommender_insight_errors",
            "Insight sections that failed to compute (see the log).",
            labels=["section"],
        )
        for section, count in sorted(self._errors.items()):
            errors.add_metric([section], count)
        yield from families
        yield errors

    def _refresh(self) -> None:
        try:
            families = self._compute(clock.now())
            with self._lock:
                self._cached = (time.monotonic(), families)
        finally:
            with self._lock:
                self._worker = None

    def _compute(self, now: float) -> list[Metric]:
        families: list[Metric] = []
        for section, build in (
            ("anomalies", self._anomalies),
            ("recommendations", self._recommendations),
            ("users", self._users),
        ):
            try:
                families.extend(build(now))
            except Exception:
                log.exception("recommender metrics: %s failed", section)
                self._errors[section] = self._errors.get(section, 0) + 1
        done = GaugeMetricFamily(
            "nexus_recommender_insights_timestamp_seconds", "When the gauges were last computed (Unix time)."
        )
        done.add_metric([], now)
        families.append(done)
        return families

    def _anomalies(self, now: float) -> list[Metric]:
        from .insights.anomalies import refresh_if_stale

        refresh_if_stale(self.rollup, self.settings, now)
        score = GaugeMetricFamily(
            "nexus_anomaly_score",
            "How unusual the latest scored hour is for the scope, 0..1 (>= 0.9: the detector flagged it).",
            labels=["detector", "scope"],
        )
        active = GaugeMetricFamily(
            "nexus_anomalies_active",
            "Scopes whose latest scored hour (within 2 h) is an anomaly.",
            labels=["detector"],
        )
        rows = self.rollup.rows(
            "SELECT s.detector, s.scope, s.score, s.is_anomaly, s.window_end, "
            "(SELECT COUNT(*) FROM anomaly_scores h WHERE h.detector = s.detector AND h.scope = s.scope "
            " AND h.score < s.score) AS below, "
            "(SELECT COUNT(*) FROM anomaly_scores h "
            "WHERE h.detector = s.detector AND h.scope = s.scope) AS n "
            "FROM anomaly_scores s JOIN (SELECT detector, scope, MAX(window_start) AS latest "
            "FROM anomaly_scores GROUP BY detector, scope) l "
            "ON l.detector = s.detector AND l.scope = s.scope AND l.latest = s.window_start"
        )
        counts: dict[str, int] = {}
        for row in rows:
            rank = row["below"] / row["n"] if row["n"] else 0.0
            value = max(rank, 0.9) if row["is_anomaly"] else min(rank, 0.89)
            score.add_metric([row["detector"], row["scope"]], round(value, 4))
            fresh = row["window_end"] >= now - 2 * 3600
            counts[row["detector"]] = counts.get(row["detector"], 0) + int(bool(row["is_anomaly"]) and fresh)
        for detector, count in sorted(counts.items()):
            active.add_metric([detector], count)
        return [score, active]

    def _recommendations(self, now: float) -> list[Metric]:
        from .insights.recommendations import recommend

        query = _range(30, now)
        # the same answer /api/insights/recommendations?period=30d serves, and minutes of work saved
        answer = self._precomputed("recommendations", query)
        if answer is not None:
            items = answer["recommendations"]
        else:
            computed = recommend(self.rollup, query, who=_ADMIN, settings=self.settings)
            items = [item.to_dict() for item in computed]
        each = GaugeMetricFamily(
            "nexus_recommendation_monthly_savings_usd",
            "Estimated monthly savings of each ranked recommendation (last 30 days, top N).",
            labels=["rank", "kind", "target"],
        )
        total = 0.0
        for rank, item in enumerate(items, start=1):
            savings = item["estimated_monthly_savings_usd"] or 0.0
            total += savings
            each.add_metric([str(rank), item["kind"], item["target"][:100]], round(savings, 4))
        overall = GaugeMetricFamily(
            "nexus_recommendations_monthly_savings_usd",
            "Sum of the ranked recommendations' estimated monthly savings.",
        )
        overall.add_metric([], round(total, 4))
        return [each, overall]

    def _precomputed(self, name: str, query: Query) -> dict[str, Any] | None:
        if self.precomputed is None:
            return None
        ready = self.precomputed.get(cache_key(name, _ADMIN, query))
        return None if ready is None else ready.value[1]

    def _user_figures(self, now: float) -> tuple[dict[str, Any], int, dict[str, int], int]:
        """(90-day user metrics, churned users, 30-day users per feature, 30-day active users)."""
        quarter_answer = self._precomputed("analytics", _range(90, now))
        month_answer = self._precomputed("analytics", _range(30, now))
        if quarter_answer is not None and month_answer is not None:
            # what /api/analytics serves for 90d and 30d: the same figures, and no second computation
            month_users = month_answer["metrics"]["users"]
            adoption = month_answer["metrics"]["usage"]["feature_adoption"]
            feature_users = {row["feature"]: row["users"] for row in adoption if row["users"]}
            return (
                quarter_answer["metrics"]["users"],
                month_users["churned_users"],
                feature_users,
                month_users["active_users"],
            )
        from .store.users import ActivitySource, user_metrics

        quarter = user_metrics(self.rollup, _range(90, now))
        # churn and adoption need only the last 30 days' and the 30 before's active users
        q30 = _range(30, now)
        source = ActivitySource(self.rollup, q30)
        previous = q30.range.previous()
        feature_users = source.feature_users(q30.range.start, q30.range.end)
        if source.sets is not None:  # no filter: the day bitmaps answer both windows
            month = source.sets.window(q30.range.start, q30.range.end) or 0
            before = source.sets.window(previous.start, previous.end) or 0
            return quarter, (before & ~month).bit_count(), feature_users, month.bit_count()
        active_30d = {user for _, user in source.user_days(q30.range.start, q30.range.end)}
        active_before = {user for _, user in source.user_days(previous.start, previous.end)}
        return quarter, len(active_before - active_30d), feature_users, len(active_30d)

    def _users(self, now: float) -> list[Metric]:
        quarter, churned_users, feature_users, active_30d = self._user_figures(now)
        active = GaugeMetricFamily(
            "nexus_insights_active_users", "Distinct active users in the trailing window.", labels=["window"]
        )
        for window in ("dau", "wau", "mau"):
            active.add_metric([window], quarter[window])
        stickiness = GaugeMetricFamily("nexus_insights_stickiness_ratio", "DAU / MAU.")
        stickiness.add_metric([], quarter["stickiness_dau_mau"])
        churned = GaugeMetricFamily(
            "nexus_insights_churned_users",
            "Users active in the previous 30 days who were not active in the last 30.",
        )
        churned.add_metric([], churned_users)
        retention = GaugeMetricFamily(
            "nexus_insights_retention_ratio",
            "Share of users still active N weeks after their first week "
            "(cohorts of the last 90 days, user-weighted).",
            labels=["weeks"],
        )
        for weeks in RETENTION_WEEKS:
            users = active_k = 0
            for cohort in quarter["retention_cohorts"]:
                if len(cohort["retention"]) > weeks:
                    users += cohort["users"]
                    active_k += cohort["retention"][weeks]["active"]
            if users:
                retention.add_metric([str(weeks)], round(active_k / users, 4))
        adoption = GaugeMetricFamily(
            "nexus_insights_feature_adoption_ratio",
            "Share of the last 30 days' active users who used the feature.",
            labels=["feature"],
        )
        for feature, users_of in sorted(feature_users.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FEATURES]:
            if active_30d:
                adoption.add_metric([feature], round(users_of / active_30d, 4))
        return [active, stickiness, churned, retention, adoption]
