"""``/api/analytics``, ``/api/analytics/costs``, ``/api/analytics/models`` (answers cached or precomputed)."""

from __future__ import annotations

from flask import Blueprint

from .common import cached_insight

__all__ = ["bp"]

bp = Blueprint("analytics", __name__, url_prefix="/api/analytics")


@bp.get("")
def analytics() -> object:
    return cached_insight("analytics")


@bp.get("/costs")
def costs() -> object:
    return cached_insight("costs")


@bp.get("/models")
def models() -> object:
    return cached_insight("models")
