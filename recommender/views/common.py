"""Per-request helpers: the caller's key, the scoped query, the JSON envelope."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request

from ..auth import Principal
from ..errors import ApiError
from ..params import Query, parse_query
from ..store.reader import Rollup

__all__ = ["envelope", "principal", "rollup", "scoped_query", "settings"]


def rollup() -> Rollup:
    return current_app.extensions["nexus_rollup"]


def settings() -> dict[str, Any]:
    return current_app.config["NEXUS"]


def principal() -> Principal:
    """The caller, from ``Authorization: Bearer`` (or ``X-API-Key``); 401 without a valid key."""
    return current_app.extensions["nexus_keys"].authenticate(
        request.headers.get("Authorization"), request.headers.get("X-API-Key")
    )


def scoped_query(
    args: Any = None, *, default_period: str = "7d", extra: tuple[str, ...] = ()
) -> tuple[Principal, Query]:
    """Authenticate (401), validate parameters (400), then apply the key's scope (403)."""
    who = principal()
    source = request.args if args is None else args
    flat = {}
    for name in source:
        values = source.getlist(name) if hasattr(source, "getlist") else [source[name]]
        if len(values) != 1:
            raise ApiError(400, f"parameter {name} was given {len(values)} times; give it once")
        flat[name] = values[0]
    query = parse_query(flat, default_period=default_period, extra=extra)
    return who, who.restrict(query)


def envelope(data: dict[str, Any], query: Query | None = None) -> Any:
    body: dict[str, Any] = {"success": True}
    if query is not None:
        body["query"] = query.to_dict()
    body["data"] = data
    return jsonify(body)
