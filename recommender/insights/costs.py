"""``/api/analytics/costs``: where the money goes, budgets month to date, forecasts, router savings."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from nexus_otel import clock

from ..auth import Principal
from ..params import Query, TimeRange, iso_utc
from ..store.reader import Rollup
from ..store.spenders import costliest_users
from ..store.totals import COST_SUMS, grouped, regroup, series, total
from ..store.users import day_of
from .forecast import DAY, FIT_DAYS, DailyModel, fit_daily, forecast_total, horizon_bounds

__all__ = [
    "CostCube",
    "budget_status",
    "cost_breakdown",
    "cost_cube",
    "cost_report",
    "daily_model",
    "forecasts",
    "router_savings",
    "top_users",
]

log = logging.getLogger(__name__)
BREAKDOWN_DIMENSIONS = ("team", "project", "feature", "model", "provider")
MODEL_SIDE = ("model", "provider")
OWNER_SIDE = ("team", "project")


@dataclass(frozen=True, slots=True)
class CostCube:
    """Cost sums for every breakdown, read once; the breakdowns regroup these rows.

    ``models``: by model, provider and routing; ``features``: by feature; ``owners``: by team
    and project. Three narrow reads, each served by the projection of the aggregates with the
    fewest keys (over every team, ~10 to 20 a week each), instead of one by all six, which has
    as many keys as the full aggregates.
    """

    models: list[dict[str, object]]
    features: list[dict[str, object]]
    owners: list[dict[str, object]]

    def rows_for(self, dimension: str) -> list[dict[str, object]]:
        """The rows that hold ``dimension``."""
        if dimension == "feature":
            return self.features
        return self.owners if dimension in OWNER_SIDE else self.models


def cost_cube(rollup: Rollup, query: Query) -> CostCube:
    """Cost sums by every breakdown dimension and routing."""
    return CostCube(
        models=grouped(rollup, query, (*MODEL_SIDE, "routed"), sums=COST_SUMS),
        features=grouped(rollup, query, ("feature",), sums=COST_SUMS),
        owners=grouped(rollup, query, OWNER_SIDE, sums=COST_SUMS),
    )


def cost_breakdown(
    rollup: Rollup, query: Query, cube: CostCube | None = None
) -> dict[str, list[dict[str, object]]]:
    cube = cost_cube(rollup, query) if cube is None else cube
    out: dict[str, list[dict[str, object]]] = {}
    overall = sum(float(r["cost_usd"]) for r in cube.models)
    for dim in BREAKDOWN_DIMENSIONS:
        rows = regroup(cube.rows_for(dim), (dim,))
        rows.sort(key=lambda r: (-float(r["cost_usd"]), str(r[dim])))
        out[dim] = [
            {
                dim: r[dim] or "(none)",
                "cost_usd": round(float(r["cost_usd"]), 6),
                "share": round(float(r["cost_usd"]) / overall, 4) if overall else 0.0,
                "requests": r["requests"],
            }
            for r in rows
        ]
    return out


def top_users(rollup: Rollup, query: Query, limit: int = 20) -> list[dict[str, object]]:
    """The costliest users in the range (see :mod:`recommender.store.spenders`)."""
    return costliest_users(rollup, query, limit=limit)


def router_savings(rollup: Rollup, query: Query, cube: CostCube | None = None) -> dict[str, object]:
    rows = regroup((cost_cube(rollup, query) if cube is None else cube).models, ("routed", "model"))
    routed = [r for r in rows if r["routed"]]
    requests = sum(int(r["requests"]) for r in rows)
    baseline = sum(float(r["baseline_cost_usd"]) for r in routed)
    cost = sum(float(r["cost_usd"]) for r in routed)
    return {
        "routed_requests": sum(int(r["requests"]) for r in routed),
        "routed_share": round(sum(int(r["requests"]) for r in routed) / requests, 4) if requests else 0.0,
        "routed_cost_usd": round(cost, 6),
        "baseline_cost_usd": round(baseline, 6),
        "savings_usd": round(baseline - cost, 6),
        "efficiency": round((baseline - cost) / baseline, 4) if baseline else 0.0,
        "by_model": [
            {
                "model": r["model"],
                "requests": r["requests"],
                "cost_usd": round(float(r["cost_usd"]), 6),
                "savings_usd": round(float(r["baseline_cost_usd"]) - float(r["cost_usd"]), 6),
            }
            for r in sorted(routed, key=lambda r: float(r["cost_usd"]) - float(r["baseline_cost_usd"]))
        ],
    }


def daily_model(rollup: Rollup, query: Query, now: float) -> DailyModel | None:
    """The forecast model on the complete UTC days before ``now`` (from the first day with calls)."""
    today = math.floor(now / DAY) * DAY
    window = query.with_range(TimeRange(today - FIT_DAYS * DAY, today, "fit"))
    days = [
        (float(r["t"]), float(r["cost_usd"])) for r in series(rollup, window, step=86400, sums=("cost_usd",))
    ]
    if not days:
        return None
    first = days[0][0]
    filled = dict(days)
    complete = [(t, filled.get(t, 0.0)) for t in _day_range(first, today)]
    return fit_daily(complete)


def _day_range(first: float, stop: float) -> list[float]:
    return [first + i * DAY for i in range(round((stop - first) / DAY))]


def forecasts(rollup: Rollup, query: Query, now: float, model: DailyModel | None = None) -> dict[str, Any]:
    model = model if model is not None else daily_model(rollup, query, now)
    out: dict[str, Any] = {"model": model.to_dict() if model else None}
    for name, (start, end) in horizon_bounds(now).items():
        spent = float(
            total(rollup, query.with_range(TimeRange(start, now, name)), sums=("cost_usd",))["cost_usd"]
        )
        out[name] = {
            "ends": iso_utc(end),
            **forecast_total(model, spent=spent, now=now, end=end),
        }
    return out


def budget_status(
    rollup: Rollup, budgets_path: str | None, who: Principal, now: float
) -> list[dict[str, object]]:
    """Month-to-date spend and forecast of every budget the caller may see (team keys: their team's)."""
    if not budgets_path or who.kind == "user":
        return []
    from exporters.budgets import ALL, BudgetFileError, load_budgets

    try:
        budget_set = load_budgets(budgets_path)
    except (OSError, BudgetFileError) as exc:
        log.warning("budgets not read: %s", exc)
        return []
    spend = budget_set.month_to_date(rollup.path, now)
    month = budget_set.month(now)
    out = []
    for series_, spent in spend.items():
        if who.kind == "team" and series_.team != who.value:
            continue
        filters = tuple(sorted(series_.filters().items()))
        model = daily_model(rollup, Query(TimeRange(0, now, "budget"), filters), now)
        fc = forecast_total(model, spent=spent, now=now, end=month.end)
        limit = series_.monthly_usd
        out.append(
            {
                "scope": series_.scope,
                "team": None if series_.team == ALL else series_.team,
                "project": None if series_.project == ALL else series_.project,
                "model": None if series_.model == ALL else series_.model,
                "timezone": budget_set.timezone,
                "monthly_usd": limit,
                "spent_usd": round(spent, 6),
                "used_ratio": round(spent / limit, 4) if limit else None,
                "forecast_usd": fc.get("forecast_usd"),
                "forecast_upper_usd": fc.get("upper_usd"),
                "forecast_ratio": round(fc["forecast_usd"] / limit, 4)
                if limit and fc.get("forecast_usd") is not None
                else None,
            }
        )
    out.sort(key=lambda b: -(b["forecast_ratio"] or b["used_ratio"] or 0))
    return out


def cost_report(rollup: Rollup, query: Query, who: Principal, *, budgets_path: str | None) -> dict[str, Any]:
    now = min(clock.now(), query.range.end)
    cube = cost_cube(rollup, query)
    overall = regroup(cube.models, ()) or [dict.fromkeys(COST_SUMS, 0)]
    overall = overall[0]
    previous = total(rollup, query.with_range(query.range.previous()), sums=("cost_usd",))
    cost, before = float(overall["cost_usd"]), float(previous["cost_usd"])
    return {
        "total_usd": round(cost, 6),
        "previous_period_usd": round(before, 6),
        "change_ratio": round((cost - before) / before, 4) if before else None,
        "unpriced_requests": overall["unpriced_requests"],
        "breakdown": {**cost_breakdown(rollup, query, cube), "user": top_users(rollup, query)},
        "daily": [
            {
                "day": day_of(r["t"]),
                "cost_usd": round(float(r["cost_usd"]), 6),
            }
            for r in series(rollup, query, step=86400, sums=("cost_usd",))
        ],
        "budgets": budget_status(rollup, budgets_path, who, now),
        "forecasts": forecasts(rollup, query.with_range(TimeRange(0, now, "all")), now),
        "router": router_savings(rollup, query, cube),
    }
