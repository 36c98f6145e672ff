"""``GET /healthz``: the process is up and the rollup opens."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .common import rollup

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> object:
    version = rollup().execute("SELECT COALESCE(MAX(version), 0) FROM _migrations").fetchone()[0]
    return jsonify({"status": "ok", "rollup_schema_version": version})
