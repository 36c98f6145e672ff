"""``/api/analytics``: users, usage, costs, models, performance and business in one answer.

``metrics`` holds the figures; ``insights`` holds the comparisons a person
would draw from them (against the previous period of equal length), each
computed from the figures, with the numbers it rests on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..params import Query, TimeRange
from ..store import events
from ..store.reader import Rollup
from ..store.totals import derived, grouped, regroup, series, total
from ..store.users import ActivitySource, user_metrics
from .costs import CostCube, cost_breakdown, cost_cube, router_savings

__all__ = ["UsageReads", "analytics_report", "business_metrics", "read_usage", "usage_metrics"]


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _change(now: float, before: float) -> float | None:
    return round((now - before) / before, 4) if before else None


@dataclass(frozen=True, slots=True)
class UsageReads:
    """What the usage figures read besides the activity and the cost cube (one read side by side)."""

    #: requests per hour of the range: ``t`` (UTC hour start) and ``requests``
    hourly: list[dict[str, Any]]
    #: feature -> uses recorded
    uses: dict[str, float]
    sessions: int


def read_usage(rollup: Rollup, query: Query) -> UsageReads:
    ssql, sparams, _ = events.where("sessions", query)
    sessions = rollup.execute(
        f"SELECT COUNT(DISTINCT session_id) FROM sessions WHERE {ssql} AND state = 'started'", sparams
    ).fetchone()[0]
    return UsageReads(
        hourly=series(rollup, query, step=3600, sums=("requests",)),
        uses=events.feature_uses_by_feature(rollup, query),
        sessions=int(sessions),
    )


def usage_metrics(
    active_users: int, cube: CostCube, reads: UsageReads, feature_users: dict[str, int]
) -> dict[str, Any]:
    """Requests, peak hours, sessions and feature adoption, from what the answer read."""
    by_hour: dict[int, int] = defaultdict(int)
    for row in reads.hourly:
        by_hour[datetime.fromtimestamp(row["t"], timezone.utc).hour] += int(row["requests"])
    requests = sum(by_hour.values())
    peak = sorted(by_hour.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    uses = reads.uses
    by_feature = {r["feature"] or "(none)": int(r["requests"]) for r in regroup(cube.features, ("feature",))}
    features = sorted(set(feature_users) | set(uses) | {f for f in by_feature if f != "(none)"})
    return {
        "requests": requests,
        "requests_per_active_user": _ratio(requests, active_users),
        "sessions": reads.sessions,
        "peak_hours_utc": [{"hour": h, "requests": n, "share": _ratio(n, requests)} for h, n in peak],
        "requests_by_hour_utc": [{"hour": h, "requests": by_hour.get(h, 0)} for h in range(24)],
        "feature_adoption": [
            {
                "feature": f,
                "users": feature_users.get(f, 0),
                "adoption": _ratio(feature_users.get(f, 0), active_users) or 0.0,
                "uses": int(uses.get(f, 0)),
                "model_requests": by_feature.get(f, 0),
            }
            for f in features
        ],
    }


def _revenue(rollup: Rollup, query: Query, time_range: TimeRange) -> tuple[float, int, list[str]]:
    sql, params, ignored = events.where("revenue", query, start=time_range.start, end=time_range.end)
    amount, payers = rollup.execute(
        f"SELECT TOTAL(amount_usd), COUNT(DISTINCT user_id) FROM revenue WHERE {sql}", params
    ).fetchone()
    return float(amount), int(payers), ignored


def _revenues(rollup: Rollup, query: Query) -> dict[str, tuple[float, int, list[str]]]:
    """Revenue of the range, of the previous period and of the last 30 days (the MRR)."""
    end = query.range.end
    return {
        "range": _revenue(rollup, query, query.range),
        "previous": _revenue(rollup, query, query.range.previous()),
        "last_30d": _revenue(rollup, query, TimeRange(end - 30 * 86400, end, "30d")),
    }


def business_metrics(
    users: dict[str, Any], cost_usd: float, revenues: dict[str, tuple[float, int, list[str]]]
) -> dict[str, Any]:
    revenue, payers, ignored = revenues["range"]
    previous, last_30d = revenues["previous"][0], revenues["last_30d"][0]
    out: dict[str, Any] = {
        "revenue_usd": round(revenue, 2),
        "previous_period_revenue_usd": round(previous, 2),
        "revenue_growth": _change(revenue, previous),
        "mrr_usd": round(last_30d, 2),
        "paying_users": payers,
        "arpu_usd": _ratio(revenue, users["active_users"]),
        "ai_cost_usd": round(cost_usd, 6),
        "ai_cost_per_active_user_usd": _ratio(cost_usd, users["active_users"]),
        "ai_cost_to_revenue": _ratio(cost_usd, revenue),
        "gross_margin_after_ai_usd": round(revenue - cost_usd, 2),
        "user_growth": _change(users["active_users"], users["previous_active_users"]),
        "churn_rate": users["churn_rate"],
    }
    if ignored:
        out["filters_not_applied"] = ignored  # revenue is not per model or provider
    return out


def _model_rows(
    requests: int, by_model: list[dict[str, Any]], quality: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for row in sorted(by_model, key=lambda r: -int(r["requests"])):
        figures = derived(row)
        fb = quality.get(row["model"])
        out.append(
            {
                "model": row["model"],
                "provider": row["provider"],
                "share": _ratio(figures["requests"], requests),
                **{
                    k: figures[k]
                    for k in ("requests", "cost_usd", "cost_per_request_usd", "error_rate", "latency_p95_s")
                },
                "feedback_score": round(fb["mean_score"], 4) if fb and fb["mean_score"] is not None else None,
                "feedback_count": fb["count"] if fb else 0,
            }
        )
    return out


def _insights(metrics: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """Comparisons with the previous period; only changes big enough to matter are listed."""
    out = []
    checks = (
        ("cost", metrics["costs"]["total_usd"], previous["cost_usd"], 0.2, "AI spend"),
        ("requests", metrics["usage"]["requests"], previous["requests"], 0.2, "Model requests"),
        ("error_rate", metrics["performance"]["error_rate"], previous["error_rate"], 0.5, "Error rate"),
        (
            "latency_p95",
            metrics["performance"]["latency_p95_s"] or 0.0,
            previous["latency_p95_s"] or 0.0,
            0.25,
            "p95 latency",
        ),
    )
    for kind, now, before, threshold, label in checks:
        change = _change(float(now), float(before))
        if change is not None and abs(change) >= threshold:
            direction = "up" if change > 0 else "down"
            out.append(
                {
                    "kind": f"{kind}_change",
                    "message": f"{label} {direction} {abs(change):.0%} vs the previous period "
                    f"({before:.4g} -> {now:.4g})",
                    "current": now,
                    "previous": before,
                    "change_ratio": change,
                }
            )
    drivers = metrics["costs"]["by_feature"]
    if drivers and drivers[0]["share"] >= 0.4:
        top = drivers[0]
        out.append(
            {
                "kind": "cost_concentration",
                "message": f"Feature {top['feature']} is {top['share']:.0%} of AI spend "
                f"(${top['cost_usd']:.2f})",
                "feature": top["feature"],
                "share": top["share"],
            }
        )
    users = metrics["users"]
    if users["churned_users"] and users["churn_rate"] >= 0.2:
        out.append(
            {
                "kind": "churn",
                "message": f"{users['churned_users']} users active in the previous period were not back "
                f"({users['churn_rate']:.0%})",
                "churned_users": users["churned_users"],
                "churn_rate": users["churn_rate"],
            }
        )
    return out


def _people(rollup: Rollup, query: Query) -> tuple[dict[str, Any], dict[str, int]]:
    """The user metrics and users per feature, which share one read of the range's activity."""
    activity = ActivitySource(rollup, query)
    users = user_metrics(rollup, query, source=activity)
    return users, activity.feature_users(query.range.start, query.range.end)


def _money(rollup: Rollup, query: Query) -> dict[str, Any]:
    """The aggregates' reads: one with every sum per model (quantiles need the histogram), the
    cost cube, the previous period's totals, errors by type, feedback per model, revenue."""
    return {
        "by_model": grouped(rollup, query, ("model", "provider")),
        "cube": cost_cube(rollup, query),
        "before": derived(total(rollup, query.with_range(query.range.previous()))),
        "errors_by_type": events.errors_by_type(rollup, query),
        "quality": events.feedback_by(rollup, query, "model"),
        "revenue": _revenues(rollup, query),
    }


def analytics_report(rollup: Rollup, query: Query) -> dict[str, Any]:
    # three independent groups of reads side by side; everything else regroups what they read
    money, (users, feature_users), usage = rollup.concurrently(
        lambda: _money(rollup, query), lambda: _people(rollup, query), lambda: read_usage(rollup, query)
    )
    by_model, cube = money["by_model"], money["cube"]
    overall = derived((regroup(by_model, ()) or [{}])[0])
    breakdown = cost_breakdown(rollup, query, cube)
    router = router_savings(rollup, query, cube)
    perf = {
        k: overall[k]
        for k in (
            "error_rate",
            "errors",
            "latency_mean_s",
            "latency_p50_s",
            "latency_p95_s",
            "latency_p99_s",
            "ttft_mean_s",
        )
    }
    perf["errors_by_type"] = money["errors_by_type"]
    perf["by_provider"] = [
        {
            "provider": r["provider"],
            **{k: v for k, v in derived(r).items() if k in ("requests", "error_rate", "latency_p95_s")},
        }
        for r in regroup(by_model, ("provider",))
    ]
    metrics: dict[str, Any] = {
        "users": users,
        "usage": usage_metrics(users["active_users"], cube, usage, feature_users),
        "costs": {
            "total_usd": overall["cost_usd"],
            "unpriced_requests": overall["unpriced_requests"],
            "savings_usd": router["savings_usd"],
            "router_efficiency": router["efficiency"],
            **{f"by_{dim}": rows for dim, rows in breakdown.items()},
        },
        "tokens": {
            k: overall[k]
            for k in (
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "reasoning_tokens",
                "tokens_per_request",
            )
        },
        "models": _model_rows(overall["requests"], by_model, money["quality"]),
        "performance": perf,
        "business": business_metrics(users, overall["cost_usd"], money["revenue"]),
    }
    return {"metrics": metrics, "insights": _insights(metrics, money["before"])}
