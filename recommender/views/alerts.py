"""``POST /alerts`` (Alertmanager's webhook) and ``GET /api/alerts`` (what it sent)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..alerts import list_alerts, store_notification
from ..errors import ApiError
from ..params import parse_time
from .common import principal, rollup

__all__ = ["bp"]

bp = Blueprint("alerts", __name__)
_MAX_BODY = 4 * 1024 * 1024


@bp.post("/alerts")
def receive() -> object:
    who = principal()
    if who.kind not in ("admin", "alerts"):
        raise ApiError(
            403, f"posting alerts needs an admin or alerts key; key {who.name!r} has scope {who.scope}"
        )
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise ApiError(413, f"notification larger than {_MAX_BODY} bytes")
    stored = store_notification(rollup(), request.get_json(silent=True))
    return jsonify({"success": True, "stored": stored})


@bp.get("/api/alerts")
def alerts() -> object:
    who = principal()
    if who.kind in ("user", "alerts"):
        raise ApiError(403, f"key {who.name!r} (scope {who.scope}) cannot list alerts")
    unknown = sorted(set(request.args) - {"status", "since", "limit"})
    if unknown:
        raise ApiError(400, f"unknown parameter(s) {', '.join(unknown)}; use status, since, limit")
    status = request.args.get("status")
    if status not in (None, "firing", "resolved"):
        raise ApiError(400, "status must be firing or resolved")
    since = parse_time(request.args["since"], "since") if "since" in request.args else None
    try:
        limit = int(request.args.get("limit", "100"))
    except ValueError:
        raise ApiError(400, "limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise ApiError(400, "limit must be between 1 and 1000")
    team = who.value if who.kind == "team" else None
    return jsonify(
        {
            "success": True,
            "data": {"alerts": list_alerts(rollup(), status=status, since=since, limit=limit, team=team)},
        }
    )
