"""Per-request helpers: the caller's key, the scoped query, the JSON envelope."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, jsonify, request

from ..auth import Principal
from ..cache import ResultCache
from ..errors import ApiError
from ..params import Query, iso_utc, parse_query
from ..precompute import INSIGHTS, cache_key
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


def cached_insight(name: str) -> Any:
    """Validate and scope the request, then answer it precomputed or from the result cache.

    A standard period of a precomputed scope with no other filter is answered
    from :mod:`recommender.precompute`; anything else from the result cache
    (see :mod:`recommender.cache`), keyed by the key's scope, the period as
    asked and the filters. A relative period is re-resolved whenever the entry
    is recomputed, and the response's ``query`` and ``cache`` say which range
    the answer covers and how old it is.
    """
    who = principal()
    flat = _flat(request.args)
    insight = INSIGHTS[name]
    store, conf = rollup(), settings()

    def resolve() -> Query:
        return who.restrict(parse_query(flat, default_period=insight.default_period))

    query = resolve()
    key = cache_key(name, who, query)
    ready = current_app.extensions["nexus_precompute"].get(key)
    if ready is not None:
        query_dict, data = ready.value
        return _answer(query_dict, data, ready.computed_at, time.time() - ready.computed_at, precomputed=True)

    def run() -> tuple[dict[str, Any], dict[str, Any]]:
        # a relative period means "30d" up to now, not up to when the entry was first made
        fresh = query if query.range.period == "custom" else resolve()
        return fresh.to_dict(), insight.compute(store, conf, who, fresh)

    cache: ResultCache = current_app.extensions["nexus_cache"]
    hit = cache.get(key, run)
    query_dict, data = hit.value
    return _answer(query_dict, data, hit.computed_at, hit.age_s, precomputed=False)


def _answer(
    query_dict: dict[str, Any], data: dict[str, Any], computed_at: float, age_s: float, *, precomputed: bool
) -> Any:
    return jsonify(
        {
            "success": True,
            "query": query_dict,
            "cache": {
                "computed_at": iso_utc(computed_at, "seconds"),
                "age_s": round(max(age_s, 0.0), 3),
                "precomputed": precomputed,
            },
            "data": data,
        }
    )


def envelope(data: dict[str, Any], query: Query | None = None) -> Any:
    body: dict[str, Any] = {"success": True}
    if query is not None:
        body["query"] = query.to_dict()
    body["data"] = data
    return jsonify(body)
