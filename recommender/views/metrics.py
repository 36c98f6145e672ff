"""``GET /metrics``: the recommender's gauges for Prometheus (no key needed, like any exporter)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["bp"]

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions["nexus_metrics_registry"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
