"""``/api/insights/recommendations`` and ``/api/anomalies``."""

from __future__ import annotations

from flask import Blueprint

from ..insights.anomalies import anomaly_report
from ..insights.recommendations import recommend
from .common import envelope, rollup, scoped_query, settings

__all__ = ["bp"]

bp = Blueprint("insights", __name__, url_prefix="/api")


@bp.get("/insights/recommendations")
def recommendations() -> object:
    who, query = scoped_query(default_period="30d")
    items = recommend(rollup(), query, who=who, settings=settings())
    return envelope({"recommendations": [item.to_dict() for item in items]}, query)


@bp.get("/anomalies")
def anomalies() -> object:
    who, query = scoped_query(default_period="7d")
    return envelope(anomaly_report(rollup(), query, who=who, settings=settings()), query)
