"""``/api/insights/recommendations`` and ``/api/anomalies``."""

from __future__ import annotations

from flask import Blueprint

from ..auth import Principal
from ..insights.anomalies import anomaly_report
from ..insights.recommendations import recommend
from ..params import Query
from .common import cached_insight, envelope, rollup, scoped_query, settings

__all__ = ["bp"]

bp = Blueprint("insights", __name__, url_prefix="/api")


@bp.get("/insights/recommendations")
def recommendations() -> object:
    store, conf = rollup(), settings()

    def compute(who: Principal, query: Query) -> dict[str, object]:
        items = recommend(store, query, who=who, settings=conf)
        return {"recommendations": [item.to_dict() for item in items]}

    return cached_insight("recommendations", compute, default_period="30d")


@bp.get("/anomalies")
def anomalies() -> object:
    who, query = scoped_query(default_period="7d")
    return envelope(anomaly_report(rollup(), query, who=who, settings=settings()), query)
