"""The raw product tables (feedback, revenue, sessions, feature uses) under a query's filters.

These tables carry team, project, feature and user; feedback also carries
model and provider. A filter a table cannot honour is reported back by
:func:`where` so responses can say which filters a figure ignored; scoping
filters (team, user) exist in every table, so a scoped key never sees more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..params import Query
from .reader import Rollup
from .user_calls import user_calls_in_range
from .users import DAY, day_of

__all__ = [
    "COLUMNS",
    "Restriction",
    "errors_by_type",
    "feature_uses_by_feature",
    "feedback_by",
    "where",
    "whole_days",
    "whole_days_and_edges",
]

COLUMNS: dict[str, frozenset[str]] = {
    "model_calls": frozenset({"team", "project", "model", "provider", "feature", "user_id"}),
    "feedback": frozenset({"team", "project", "model", "provider", "feature", "user_id"}),
    "revenue": frozenset({"team", "project", "feature", "user_id"}),
    "sessions": frozenset({"team", "project", "feature", "user_id"}),
    "feature_uses": frozenset({"team", "project", "feature", "user_id"}),
}


def where(
    table: str,
    query: Query,
    *,
    start: float | None = None,
    end: float | None = None,
    alias: str = "",
    rated_call: bool = False,
) -> tuple[str, list[object], list[str]]:
    """``(sql, params, ignored_filters)`` selecting ``table``'s rows in the range under the filters.

    ``rated_call`` (feedback): where a feedback row names no model, provider or
    feature, the rated call's value counts.
    """
    prefix = f"{alias}." if alias else ""
    start = query.range.start if start is None else start
    end = query.range.end if end is None else end
    user = query.get("user_id") if table == "model_calls" else None
    if user is not None:
        sql, params = user_calls_in_range(user, start, end, alias=alias)
        clauses, ignored = [sql], []
    else:
        clauses, params, ignored = [f"{prefix}ts >= ?", f"{prefix}ts < ?"], [start, end], []
    for name, value in query.filters:
        if name in COLUMNS[table]:
            if rated_call and name in ("model", "provider", "feature"):
                clauses.append(f"{_rated(prefix, name)} = ?")
            else:
                clauses.append(f"{prefix}{name} = ?")
            params.append(value)
        else:
            ignored.append(name)
    return " AND ".join(clauses), params, ignored


def whole_days(query: Query) -> tuple[float, float]:
    """The start of the first and the end of the last whole UTC day inside the query's range."""
    return math.ceil(query.range.start / DAY) * DAY, math.floor(query.range.end / DAY) * DAY


@dataclass(frozen=True, slots=True)
class Restriction:
    """A condition for :func:`whole_days_and_edges` to AND to its day and raw SELECTs (the same
    test, written for each table's indexes), and its parameters."""

    days: str = ""
    raw: str = ""
    params: tuple[object, ...] = ()


def whole_days_and_edges(
    query: Query,
    *,
    day_select: str | None,
    day_filters: list[tuple[str, object]],
    raw_table: str,
    raw_select: str,
    alias: str = "",
    restrict: Restriction | None = None,
) -> tuple[list[str], list[object]]:
    """SELECTs (and their parameters) to UNION ALL over the query's range: whole UTC days from a
    day table, only the partial days at the edges from raw rows.

    ``day_select`` ends in ``WHERE day >= ? AND day < ?`` (``None``: the day table cannot answer
    this query, so raw rows cover the whole range); ``day_filters`` are ANDed to it.
    ``raw_select`` has a ``{where}`` slot for :func:`where` on ``raw_table`` (its rows named ``alias``).
    ``restrict`` is ANDed to every SELECT (SQLite does not push a condition on the union down into it).
    """
    restrict = restrict or Restriction()
    start, end = query.range.start, query.range.end
    first_day, last_day = whole_days(query)
    parts: list[str] = []
    params: list[object] = []
    if day_select is not None and first_day < last_day:
        parts.append(day_select + "".join(f" AND {name} = ?" for name, _ in day_filters) + restrict.days)
        params += [day_of(first_day), day_of(last_day), *(value for _, value in day_filters)]
        params += restrict.params
        edges = [(start, first_day), (last_day, end)]
    else:
        edges = [(start, end)]
    for a, b in edges:
        if b > a:
            sql, edge_params, _ = where(raw_table, query, start=a, end=b, alias=alias)
            parts.append(raw_select.format(where=sql) + restrict.raw)
            params += [*edge_params, *restrict.params]
    return parts, params


def feature_uses_by_feature(rollup: Rollup, query: Query) -> dict[str, float]:
    """Feature -> summed feature-use counts in the range under the filters (uses without a feature aside).

    Whole UTC days come from ``feature_use_day`` unless a user is filtered (it has no user column),
    only the partial days at the edges from raw feature uses: at 10M events the raw rows of 90 days
    took ~1.4 s, the day rows take milliseconds. Counts are integers, so the sums are exact.
    """
    parts, params = whole_days_and_edges(
        query,
        day_select=(
            None
            if query.get("user_id") is not None
            else "SELECT feature, uses FROM feature_use_day WHERE day >= ? AND day < ?"
        ),
        day_filters=[(name, value) for name, value in query.filters if name in COLUMNS["feature_uses"]],
        raw_table="feature_uses",
        raw_select="SELECT feature, count AS uses FROM feature_uses WHERE {where} AND feature IS NOT NULL",
    )
    if not parts:
        return {}
    union = " UNION ALL ".join(parts)
    return {
        f: float(n)
        for f, n in rollup.execute(f"SELECT feature, TOTAL(uses) FROM ({union}) GROUP BY feature", params)
    }


def _rated(prefix: str, name: str) -> str:
    # COALESCE is lazy in SQLite: the rated call is looked up only for rows that lack the value
    call = f"SELECT c.{name} FROM model_calls c WHERE c.request_id = {prefix}request_id"
    return f"COALESCE({prefix}{name}, ({call}))"


def errors_by_type(rollup: Rollup, query: Query) -> list[dict[str, object]]:
    """Failed calls by provider and error type, most first.

    Whole UTC days come from ``error_day`` under team and project filters (it has no model,
    feature or user column), only the partial days at the edges from the raw failed calls.
    """
    parts, params = whole_days_and_edges(
        query,
        day_select=(
            None
            if {"model", "feature", "user_id"} & set(query.filter_map)
            else "SELECT provider, error_type, errors FROM error_day WHERE day >= ? AND day < ?"
        ),
        day_filters=list(query.filters),
        raw_table="model_calls",
        raw_select="SELECT provider, COALESCE(error_type, 'unknown') AS error_type, 1 AS errors "
        "FROM model_calls WHERE {where} AND outcome = 'error'",
    )
    if not parts:
        return []
    return rollup.rows(
        f"SELECT provider, error_type, SUM(errors) AS errors FROM ({' UNION ALL '.join(parts)}) "
        "GROUP BY provider, error_type ORDER BY errors DESC, provider, error_type",
        params,
    )


def feedback_by(rollup: Rollup, query: Query, by: str) -> dict[str, dict[str, float | int | None]]:
    """``by`` (model | feature | provider) -> {count, mean score (None when no row has a score)}.

    Feedback that names no model (or feature, provider) takes the rated call's. By model under
    team and project filters only, whole UTC days come from ``feedback_day`` (feedback naming its
    model) plus the raw rows naming none; the partial days at the range's edges are all raw.
    """
    if by not in ("model", "feature", "provider"):
        raise ValueError("feedback can be grouped by model, feature or provider")
    raw = (
        f"SELECT {_rated('f.', by)} AS key, 1 AS n, (f.score IS NOT NULL) AS scored, f.score AS total "
        "FROM feedback f WHERE {where}"
    )
    if by == "model" and not {"model", "provider", "feature", "user_id"} & set(query.filter_map):
        parts, params = whole_days_and_edges(
            query,
            day_select="SELECT model AS key, feedback AS n, scored, score_sum AS total FROM feedback_day "
            "WHERE day >= ? AND day < ?",
            day_filters=list(query.filters),
            raw_table="feedback",
            raw_select=raw,
            alias="f",
        )
        first, last = whole_days(query)
        if first < last:  # the whole days' feedback that names no model (feedback_day leaves it out)
            sql, unnamed, _ = where("feedback", query, start=first, end=last, alias="f")
            parts.append(raw.format(where=f"{sql} AND f.model IS NULL"))
            params += unnamed
    else:
        sql, params, _ = where("feedback", query, alias="f", rated_call=True)
        parts = [raw.format(where=sql)]
    rows = rollup.execute(
        f"SELECT key, SUM(n), SUM(scored), TOTAL(total) FROM ({' UNION ALL '.join(parts)}) GROUP BY key",
        params,
    )
    return {
        key: {"count": int(n), "mean_score": float(total) / scored if scored else None}
        for key, n, scored, total in rows
        if key is not None
    }
