"""``/api/analytics``, ``/api/analytics/costs``, ``/api/analytics/models``."""

from __future__ import annotations

from flask import Blueprint

from ..insights.analytics import analytics_report
from ..insights.costs import cost_report
from ..insights.models import model_report
from .common import envelope, rollup, scoped_query, settings

__all__ = ["bp"]

bp = Blueprint("analytics", __name__, url_prefix="/api/analytics")


@bp.get("")
def analytics() -> object:
    _who, query = scoped_query()
    return envelope(analytics_report(rollup(), query), query)


@bp.get("/costs")
def costs() -> object:
    who, query = scoped_query()
    return envelope(cost_report(rollup(), query, who, budgets_path=settings()["budgets_path"]), query)


@bp.get("/models")
def models() -> object:
    _who, query = scoped_query()
    return envelope(model_report(rollup(), query), query)
