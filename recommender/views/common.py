"""Per-request helpers: the caller's key, the scoped query, the JSON envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, jsonify, request

from ..auth import Principal
from ..cache import ResultCache
from ..errors import ApiError
from ..params import Query, iso_utc, parse_query
from ..store.reader import Rollup

__all__ = ["cached_insight", "envelope", "principal", "rollup", "scoped_query", "settings"]


def rollup() -> Rollup:
    return current_app.extensions["nexus_rollup"]


def settings() -> dict[str, Any]:
    return current_app.config["NEXUS"]


def principal() -> Principal:
    """The caller, from ``Authorization: Bearer`` (or ``X-API-Key``); 401 without a valid key."""
    return current_app.extensions["nexus_keys"].authenticate(
        request.headers.get("Authorization"), request.headers.get("X-API-Key")
    )


def _flat(args: Any) -> dict[str, str]:
    flat = {}
    for name in args:
        values = args.getlist(name) if hasattr(args, "getlist") else [args[name]]
        if len(values) != 1:
            raise ApiError(400, f"parameter {name} was given {len(values)} times; give it once")
        flat[name] = values[0]
    return flat


def scoped_query(
    args: Any = None, *, default_period: str = "7d", extra: tuple[str, ...] = ()
) -> tuple[Principal, Query]:
    """Authenticate (401), validate parameters (400), then apply the key's scope (403)."""
    who = principal()
    flat = _flat(request.args if args is None else args)
    return who, who.restrict(parse_query(flat, default_period=default_period, extra=extra))


def cached_insight(
    name: str, compute: Callable[[Principal, Query], dict[str, Any]], *, default_period: str
) -> Any:
    """Validate and scope the request, then answer from the result cache (see :mod:`recommender.cache`).

    The cache key is the key's scope, the period as asked and the filters; a relative
    period is re-resolved whenever the entry is recomputed, and the response's
    ``query`` and ``cache`` say which range the answer covers and how old it is.
    """
    who = principal()
    flat = _flat(request.args)

    def resolve() -> Query:
        return who.restrict(parse_query(flat, default_period=default_period))

    query = resolve()
    period = query.range.period if query.range.period != "custom" else (query.range.start, query.range.end)
    key = (name, who.scope, period, query.filters)  # never shared between scopes

    def run() -> tuple[dict[str, Any], dict[str, Any]]:
        # a relative period means "30d" up to now, not up to when the entry was first made
        fresh = query if query.range.period == "custom" else resolve()
        return fresh.to_dict(), compute(who, fresh)

    cache: ResultCache = current_app.extensions["nexus_cache"]
    hit = cache.get(key, run)
    query_dict, data = hit.value
    return jsonify(
        {
            "success": True,
            "query": query_dict,
            "cache": {"computed_at": iso_utc(hit.computed_at, "seconds"), "age_s": round(hit.age_s, 3)},
            "data": data,
        }
    )


def envelope(data: dict[str, Any], query: Query | None = None) -> Any:
    body: dict[str, Any] = {"success": True}
    if query is not None:
        body["query"] = query.to_dict()
    body["data"] = data
    return jsonify(body)
