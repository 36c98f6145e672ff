"""``/api/insights/recommendations`` and ``/api/anomalies``."""

from __future__ import annotations

from flask import Blueprint

from ..insights.anomalies import anomaly_report
from .common import cached_insight, envelope, rollup, scoped_query, settings

__all__ = ["bp"]

bp = Blueprint("insights", __name__, url_prefix="/api")


@bp.get("/insights/recommendations")
def recommendations() -> object:
    return cached_insight("recommendations")


@bp.get("/anomalies")
def anomalies() -> object:
    who, query = scoped_query(default_period="7d")
    return envelope(anomaly_report(rollup(), query, who=who, settings=settings()), query)
