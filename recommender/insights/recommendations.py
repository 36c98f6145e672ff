"""``/api/insights/recommendations``: what to change to spend less or serve better, ranked by worth.

Every recommendation is derived from the rollup under the query's filters
(already narrowed to the caller's key), never from a fixed list: a kind only
speaks when its data clears a minimum-evidence threshold and shows a clear
difference, so normal traffic yields an empty list rather than noise.

Money is extrapolated from the query's range to a 30-day month
(``x * 30 / range.days``). Recommendations that save money come first, largest
saving (or, for budgets, largest forecast overrun) first; those whose impact is
not money (quality, failures) follow, by a severity in affected requests per
month. Kinds:

``cheaper_model``, ``prompt_caching``, ``router_threshold``
    see :mod:`recommender.insights.recommend_quality` and :mod:`.recommend_router`.
``provider_errors``
    a provider whose error rate in the recent part of the range (last 24 h, or
    the last quarter of ranges under two days) is >= 2x and >= 2 points above
    the rest of the range, with >= 50 requests in each part.
``low_adoption``
    a feature touched by < 5% of the >= 20 active users although it costs money
    in the range or has been in use for >= 14 days.
``budget_overrun``
    a budget whose month-end forecast exceeds its limit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from nexus_otel import clock

from ..auth import Principal
from ..params import Query, TimeRange, iso_utc
from ..store.reader import Rollup
from ..store.totals import grouped
from ..store.user_calls import user_calls_clause
from ..store.users import ActivitySource
from .costs import budget_status
from .recommend_quality import call_facts, cheaper_model, price_table, prompt_caching
from .recommend_router import router_threshold

__all__ = [
    "ADOPTION_MAX_SHARE",
    "ADOPTION_MIN_AGE_DAYS",
    "ADOPTION_MIN_USERS",
    "ERROR_MIN_INCREASE",
    "ERROR_MIN_RATIO",
    "ERROR_MIN_REQUESTS",
    "KINDS",
    "Recommendation",
    "recommend",
]

KINDS: tuple[str, ...] = (
    "cheaper_model",
    "prompt_caching",
    "router_threshold",
    "provider_errors",
    "low_adoption",
    "budget_overrun",
)
#: Requests needed in both the recent and the earlier part of the range.
ERROR_MIN_REQUESTS = 50
#: The recent error rate must be at least this multiple of the earlier one ...
ERROR_MIN_RATIO = 2.0
#: ... and this many percentage points (as a fraction) above it.
ERROR_MIN_INCREASE = 0.02
#: Active users needed before a share of them means anything.
ADOPTION_MIN_USERS = 20
#: A feature used by fewer than this share of active users has low adoption.
ADOPTION_MAX_SHARE = 0.05
#: A feature this old is no longer just new (when it costs nothing, age alone qualifies it).
ADOPTION_MIN_AGE_DAYS = 14
DAY = 86400.0
_BUDGET_FIELDS = (
    "scope",
    "team",
    "project",
    "model",
    "timezone",
    "monthly_usd",
    "spent_usd",
    "forecast_usd",
    "forecast_upper_usd",
    "forecast_ratio",
)


@dataclass(frozen=True)
class Recommendation:
    """One thing to change, with its estimated impact and the numbers behind it."""

    kind: str
    title: str
    target: str
    estimated_monthly_savings_usd: float | None
    impact: dict[str, Any]
    action: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    """JSON-friendly: floats rounded to 6 decimals (money is in dollars), NaN/inf dropped to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


_Found = list[dict[str, Any]]


def recommend(
    rollup: Rollup, query: Query, *, who: Principal, settings: dict[str, Any]
) -> list[Recommendation]:
    """The ranked recommendations for ``query`` (at most ``settings["recommendations_top_n"]``)."""
    per_month = 30.0 / max(query.range.days, 1e-9)
    table = price_table(settings)
    now = min(clock.now(), query.range.end)

    def by_band() -> tuple[_Found, _Found]:
        facts = call_facts(rollup, query)  # the call bands the cheaper-model and router checks share
        return (
            cheaper_model(rollup, query, table, per_month, facts=facts),
            router_threshold(rollup, query, per_month, facts=facts),
        )

    def by_aggregates() -> tuple[_Found, _Found]:
        return prompt_caching(rollup, query, table, per_month), provider_errors(rollup, query)

    def by_users_and_budgets() -> tuple[_Found, _Found]:
        return (
            low_adoption(rollup, query, per_month),
            budget_overrun(rollup, query, who, settings.get("budgets_path"), now),
        )

    # independent checks, side by side (each group reads on its own connection); the list keeps
    # the checks' order, which breaks ties in the ranking
    (cheaper, router), (caching, errors), (adoption, budgets) = rollup.concurrently(
        by_band, by_aggregates, by_users_and_budgets
    )
    found = [*cheaper, *caching, *router, *errors, *adoption, *budgets]
    found.sort(key=_rank)
    top_n = int(settings.get("recommendations_top_n") or 10)
    return [
        Recommendation(
            kind=r["kind"],
            title=r["title"],
            target=r["target"],
            estimated_monthly_savings_usd=None if r["savings"] is None else round(r["savings"], 2),
            impact=r["impact"],
            action=r["action"],
            evidence={**r["evidence"], "period": query.range.to_dict()},
        )
        for r in found[:top_n]
    ]


def _rank(r: dict[str, Any]) -> tuple[int, float]:
    """Money first (savings, else a monetary impact such as a budget overrun), then severity."""
    money = r["savings"] if r["savings"] is not None else r.get("money")
    if money is not None:
        return (0, -money)
    return (1, -float(r.get("severity") or 0.0))


def _by_provider(rollup: Rollup, query: Query) -> dict[str, dict[str, Any]]:
    # only the counts: every summed column is one more value read from each of ~100k aggregate rows
    return {r["provider"]: r for r in grouped(rollup, query, ("provider",), sums=("errors",))}


def provider_errors(rollup: Rollup, query: Query) -> list[dict[str, Any]]:
    """Providers whose error rate rose clearly in the recent part of the range (a failover candidate)."""
    rng = query.range
    recent_s = DAY if rng.seconds >= 2 * DAY else math.floor(rng.seconds / 4 / 60) * 60
    split = rng.end - recent_s
    if recent_s <= 0 or split <= rng.start:
        return []
    recent = _by_provider(rollup, query.with_range(TimeRange(split, rng.end, "recent")))
    earlier = _by_provider(rollup, query.with_range(TimeRange(rng.start, split, "earlier")))
    rates = {p: int(r["errors"]) / int(r["requests"]) for p, r in recent.items()}
    out = []
    for provider, now in sorted(recent.items()):
        before = earlier.get(provider)
        if before is None or now["requests"] < ERROR_MIN_REQUESTS or before["requests"] < ERROR_MIN_REQUESTS:
            continue
        rate, base = rates[provider], int(before["errors"]) / int(before["requests"])
        if rate < ERROR_MIN_RATIO * base or rate - base < ERROR_MIN_INCREASE:
            continue
        failed = (rate - base) * int(now["requests"]) * 30 * DAY / recent_s
        healthy = sorted(p for p, r in rates.items() if p != provider and r <= base)
        fallback = f"fail over to {', '.join(healthy)}" if healthy else "fail over to another provider"
        hours = recent_s / 3600
        out.append(
            {
                "kind": "provider_errors",
                "title": f"{provider} errors rose to {rate:.1%} in the last {hours:g}h (from {base:.1%})",
                "target": f"provider:{provider}",
                "savings": None,
                "severity": failed,
                "impact": {
                    "failed_requests_per_month": failed,
                    "requests_per_month": int(now["requests"]) * 30 * DAY / recent_s,
                    "error_rate_increase": rate - base,
                },
                "action": f"Retry {provider} calls with backoff and {fallback} while its errors stay high",
                "evidence": {
                    "recent": _part(split, rng.end, now, rate),
                    "earlier": _part(rng.start, split, before, base),
                    "thresholds": {
                        "min_requests": ERROR_MIN_REQUESTS,
                        "min_ratio": ERROR_MIN_RATIO,
                        "min_increase": ERROR_MIN_INCREASE,
                    },
                },
            }
        )
    return out


def _part(start: float, end: float, row: dict[str, Any], rate: float) -> dict[str, Any]:
    return {
        "from": iso_utc(start),
        "to": iso_utc(end),
        "requests": int(row["requests"]),
        "errors": int(row["errors"]),
        "error_rate": rate,
    }


def _first_used(rollup: Rollup, query: Query, src: ActivitySource) -> dict[str, float]:
    """Feature -> first time anyone touched it (under the filters), from the longest-kept source."""
    if src.use_user_day:
        sql = "SELECT feature, MIN(day) FROM user_day_features"
        params: list[object] = []
        if "user_id" in src.filters:
            sql += " WHERE user_id = ?"
            params.append(src.filters["user_id"])
        rows = rollup.execute(sql + " GROUP BY feature", params).fetchall()
        return {f: datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp() for f, d in rows if f}
    clauses = " AND ".join(f"{name} = ?" for name in sorted(src.filters))
    values = [v for _, v in sorted(src.filters.items())]
    if src.table is not None:
        # the first event of each (day, team, project, user, feature): the same MIN as over the raw events
        rows = rollup.execute(
            f"SELECT feature, MIN(first_seen) FROM user_team_day_features WHERE {clauses} GROUP BY feature",
            values,
        ).fetchall()
        return {feature: float(t) for feature, t in rows}
    tables = ["model_calls"] if {"model", "provider"} & set(src.filters) else ["model_calls", "feature_uses"]
    out: dict[str, float] = {}
    for table in tables:
        where, params = clauses, values
        if table == "model_calls" and "user_id" in src.filters:
            user_sql, user_params = user_calls_clause(src.filters["user_id"])
            where, params = f"{clauses} AND {user_sql}", [*values, *user_params]
        rows = rollup.execute(
            f"SELECT feature, MIN(ts) FROM {table} WHERE feature IS NOT NULL AND {where} GROUP BY feature",
            params,
        ).fetchall()
        for feature, t in rows:
            out[feature] = min(out.get(feature, t), t)
    return out


def low_adoption(
    rollup: Rollup, query: Query, per_month: float, *, source: ActivitySource | None = None
) -> list[dict[str, Any]]:
    """Features few active users touch: promote them or retire them (and their model spend).

    The active users and each feature's users come from one :class:`ActivitySource` (``source``:
    the caller's): without filters or with team and project filters the day bitmaps answer both,
    other filters read the day rows or, once for both, the raw events.
    """
    rng = query.range
    src = ActivitySource(rollup, query) if source is None else source
    if src.table is None:
        src.load(rng.start, rng.end)  # one raw read answers both the active users and the feature users
    active = src.count(rng.start, rng.end)
    if active < ADOPTION_MIN_USERS:
        return []
    users = src.feature_users(rng.start, rng.end)
    by_feature = grouped(rollup, query, ("feature",), sums=("cost_usd",))
    cost = {r["feature"]: float(r["cost_usd"]) for r in by_feature if r["feature"]}
    first = (
        _first_used(rollup, query, src)
        if any(n / active < ADOPTION_MAX_SHARE and cost.get(f, 0.0) <= 0 for f, n in users.items())
        else {}
    )
    out = []
    for feature, n in sorted(users.items()):
        share = n / active
        monthly = cost.get(feature, 0.0) * per_month
        age_days = (rng.end - first[feature]) / DAY if feature in first else None
        if share >= ADOPTION_MAX_SHARE or not feature:
            continue
        if monthly <= 0 and (age_days is None or age_days < ADOPTION_MIN_AGE_DAYS):
            continue
        cost_text = f"; it costs ${monthly:,.2f}/month in model calls" if monthly > 0 else ""
        out.append(
            {
                "kind": "low_adoption",
                "title": f"'{feature}' is used by {n} of {active} active users ({share:.1%}){cost_text}",
                "target": f"feature:{feature}",
                "savings": monthly if monthly > 0 else None,
                "severity": (active - n) / active,
                "impact": {"monthly_usd": monthly, "users": n, "active_users": active, "adoption": share},
                "action": (
                    f"Make '{feature}' easier to discover for the {active - n} active users who never use "
                    f"it, or retire it" + (f" and save ${monthly:,.2f}/month" if monthly > 0 else "")
                ),
                "evidence": {
                    "feature_users": n,
                    "active_users": active,
                    "adoption": share,
                    "cost_in_period_usd": cost.get(feature, 0.0),
                    "in_use_for_days": age_days,
                    "thresholds": {
                        "max_adoption": ADOPTION_MAX_SHARE,
                        "min_active_users": ADOPTION_MIN_USERS,
                        "min_age_days": ADOPTION_MIN_AGE_DAYS,
                    },
                },
            }
        )
    return out


def budget_overrun(
    rollup: Rollup, query: Query, who: Principal, budgets_path: str | None, now: float
) -> list[dict[str, Any]]:
    """Budgets forecast to end the month over their limit.

    A budget is only shown when the query's filters do not ask for something it
    cannot be narrowed to: budgets are per team, project and model, so a
    feature, provider or user filter (or a different team) leaves them out.
    """
    out = []
    for b in budget_status(rollup, budgets_path, who, now):
        scoped = {"team": b["team"], "project": b["project"], "model": b["model"]}
        if any(scoped.get(name) != value for name, value in query.filters):
            continue
        forecast, limit = b.get("forecast_usd"), float(b["monthly_usd"])
        if forecast is None or forecast <= limit:
            continue
        over = float(forecast) - limit
        name = " ".join(f"{k}={v}" for k, v in scoped.items() if v) or "everything"
        key = b[b["scope"]] if b["scope"] in scoped else None
        out.append(
            {
                "kind": "budget_overrun",
                "title": f"Budget {name} is forecast to reach ${forecast:,.2f} of ${limit:,.2f} this month",
                "target": f"budget:{b['scope']}:{key}" if key else f"budget:{b['scope']}",
                "savings": None,
                "money": over,
                "impact": {
                    "monthly_usd": over,
                    "forecast_usd": forecast,
                    "forecast_ratio": b.get("forecast_ratio"),
                },
                "action": (
                    f"Cut {name} spend by ${over:,.2f} before month end (cheaper models, caching, limits) "
                    f"or raise its budget above ${forecast:,.2f}"
                ),
                "evidence": {k: b.get(k) for k in _BUDGET_FIELDS},
            }
        )
    return out
