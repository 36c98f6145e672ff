"""``/api/analytics``, ``/api/analytics/costs``, ``/api/analytics/models`` (answers cached, see ``cache``)."""

from __future__ import annotations

from flask import Blueprint

from ..insights.analytics import analytics_report
from ..insights.costs import cost_report
from ..insights.models import model_report
from .common import cached_insight, rollup, settings

__all__ = ["bp"]

bp = Blueprint("analytics", __name__, url_prefix="/api/analytics")


@bp.get("")
def analytics() -> object:
    store = rollup()
    return cached_insight("analytics", lambda who, q: analytics_report(store, q), default_period="7d")


@bp.get("/costs")
def costs() -> object:
    store, budgets = rollup(), settings()["budgets_path"]
    return cached_insight(
        "costs", lambda who, q: cost_report(store, q, who, budgets_path=budgets), default_period="7d"
    )


@bp.get("/models")
def models() -> object:
    store = rollup()
    return cached_insight("models", lambda who, q: model_report(store, q), default_period="7d")
