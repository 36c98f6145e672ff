"""What the cheaper-model and router-threshold checks read about calls: usage and feedback by band.

Their conditions are per call (a prompt of at most :data:`SHORT_PROMPT_TOKENS` input
tokens, a router confidence in a 0.1-wide band), so they once scanned the raw calls of the
whole range (4.5 + 2.0 + 1.7 s for 30 days of one team at 10M events). The rollup's
``call_band_week``, ``call_band_day`` and ``call_band_hour`` (``exporters.rollup.bands``)
keep the same sums keyed by those bands (``call_band_global_*`` the same over every team,
read when no team filter applies), so whole weeks, UTC days and hours are read from
them and only the partial hours at the range's edges from raw calls, whose rows are put
into the same bands here (with days only, the partial days at the edges, ~90k raw calls at
10M events, took 0.3 s of a 90-day answer's 0.75 s). The answer is the same either way
(counts exactly, float sums up to the order of additions); raw calls cover the whole range
when the tables cannot answer: a user or project filter (they have no such column) or a
confidence outside [0, 1] (kept apart as an out-of-range band).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from exporters.rollup.bands import (
    BAND_TABLES,
    CONFIDENCE_BAND,
    GLOBAL_BAND_TABLES,
    OUT_OF_RANGE_BAND,
    SHORT_PROMPT_TOKENS,
    confidence_band,
)

from ..params import Query
from ..store.events import where
from ..store.reader import Rollup

__all__ = ["SHORT_PROMPT_TOKENS", "CallFacts", "band_edge", "call_facts", "calls_where"]

Row = dict[str, Any]
HOUR = BAND_TABLES["call_band_hour"]
DAY = BAND_TABLES["call_band_day"]
WEEK = BAND_TABLES["call_band_week"]
#: Filters the band tables have columns for.
_DAY_FILTERS = frozenset({"team", "feature", "model", "provider"})
_BAND_COLUMNS = (
    "routed, feature, model, provider, routed_from, band, calls, input_tokens, output_tokens, "
    "cache_read_tokens, cost_usd, priced, baseline_cost_usd, min_confidence, feedback, scored, score_sum"
)
_UNROUTED_SUMS = ("calls", "input", "output", "cache_read", "cost", "priced")
_ROUTED_SUMS = ("calls", "cost", "baseline_cost")


def band_edge(band: int) -> float:
    """The lower edge of a confidence band, as the router check names it (0.1 * band, 6 decimals)."""
    return round(band * CONFIDENCE_BAND, 6)


def calls_where(
    query: Query, *, start: float | None = None, end: float | None = None
) -> tuple[str, list[object]]:
    """``WHERE`` SQL and parameters: calls (alias ``c``) in the range or ``[start, end)``, filtered."""
    sql, params, _ = where("model_calls", query, alias="c", start=start, end=end)
    return sql, params


@dataclass(frozen=True, slots=True)
class CallFacts:
    """Unrouted and routed calls' usage and feedback in the range, under the query's filters.

    ``short_usage`` / ``short_feedback``: unrouted calls with <= :data:`SHORT_PROMPT_TOKENS`
    input tokens per (feature, model, provider); ``unrouted_calls`` / ``unrouted_feedback``:
    all unrouted calls per (feature, model); ``routed_usage`` / ``routed_feedback``: routed
    calls with a confidence per (feature, routed_from, ``band``: the confidence band's lower
    edge), usage rows with the lowest confidence of their group as ``router_confidence``.
    Only calls with a feature count; feedback counts where its rated call is.
    """

    short_usage: list[Row]
    short_feedback: list[Row]
    unrouted_calls: dict[tuple[str, str], int]
    unrouted_feedback: dict[tuple[str, str], Row]
    routed_usage: list[Row]
    routed_feedback: list[Row]


def _unrouted_sums() -> dict[str, float]:
    return dict.fromkeys(_UNROUTED_SUMS, 0)


def _rated_sums() -> dict[str, float]:
    return {"n": 0, "scored": 0, "sum": 0.0}


class _Groups:
    """Sums per (feature, model, provider, prompt band) and per (feature, routed_from, confidence band)."""

    def __init__(self) -> None:
        self.unrouted: dict[tuple[Any, ...], dict[str, float]] = defaultdict(_unrouted_sums)
        self.routed: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.rated: dict[tuple[Any, ...], dict[str, float]] = defaultdict(_rated_sums)

    def add_unrouted(self, key: tuple[Any, ...], row: Row) -> None:
        acc = self.unrouted[key]
        for name in _UNROUTED_SUMS:
            acc[name] += row[name]

    def add_routed(self, key: tuple[Any, ...], row: Row, confidence: float) -> None:
        acc = self.routed.get(key)
        if acc is None:
            self.routed[key] = {**{n: row[n] for n in _ROUTED_SUMS}, "min": confidence}
            return
        for name in _ROUTED_SUMS:
            acc[name] += row[name]
        acc["min"] = min(acc["min"], confidence)

    def add_rated(self, key: tuple[Any, ...], n: int, scored: int, score_sum: float) -> None:
        acc = self.rated[key]
        acc["n"] += n
        acc["scored"] += scored
        acc["sum"] += score_sum


def call_facts(rollup: Rollup, query: Query, *, raw: bool = False) -> CallFacts:
    """The sums and feedback of :class:`CallFacts`: whole hours, days and weeks from the band tables,
    the rest raw.

    ``raw``: read only raw calls (the reference the band rows are tested against).
    """
    start, end = query.range.start, query.range.end
    first_hour, last_hour = math.ceil(start / HOUR) * HOUR, math.floor(end / HOUR) * HOUR
    groups = _Groups()
    if not raw and set(query.filter_map) <= _DAY_FILTERS and first_hour < last_hour:
        if _add_band_rows(groups, rollup, query, first_hour, last_hour):
            for a, b in ((start, first_hour), (last_hour, end)):
                if b > a:
                    _add_raw(groups, rollup, query, a, b)
            return _facts(groups)
        groups = _Groups()  # an out-of-range confidence: the raw calls decide, as before
    _add_raw(groups, rollup, query, start, end)
    return _facts(groups)


def _band_segments(start: int, end: int, tables: dict[int, str]) -> list[tuple[str, int, int]]:
    """``[start, end)`` (whole hours) as whole weeks from the week table, whole days from the day
    table and the other hours from the hour table (``tables``: width -> table)."""
    first_day, last_day = math.ceil(start / DAY) * DAY, math.floor(end / DAY) * DAY
    if first_day >= last_day:
        return [(tables[HOUR], start, end)]
    first_week, last_week = math.ceil(first_day / WEEK) * WEEK, math.floor(last_day / WEEK) * WEEK
    if first_week >= last_week:
        days = [(tables[DAY], first_day, last_day)]
    else:
        days = [
            (tables[DAY], first_day, first_week),
            (tables[WEEK], first_week, last_week),
            (tables[DAY], last_week, last_day),
        ]
    out = [(tables[HOUR], start, first_day), *days, (tables[HOUR], last_day, end)]
    return [(table, a, b) for table, a, b in out if b > a]


#: width -> band table: by team, and over every team (a fifth of the rows, for answers not filtered by team)
_TEAM_TABLES = {width: table for table, width in BAND_TABLES.items()}
_GLOBAL_TABLES = {width: table for table, width in GLOBAL_BAND_TABLES.items()}


def _add_band_rows(groups: _Groups, rollup: Rollup, query: Query, start: int, end: int) -> bool:
    parts, params = [], []
    tables = _TEAM_TABLES if "team" in query.filter_map else _GLOBAL_TABLES
    for table, a, b in _band_segments(start, end, tables):
        clauses = ["bucket_start >= ?", "bucket_start < ?"]
        params += [a, b]
        for name, value in query.filters:
            clauses.append(f"{name} = ?")
            params.append(value)
        parts.append(f"SELECT {_BAND_COLUMNS} FROM {table} WHERE {' AND '.join(clauses)}")
    rows = rollup.execute(
        "SELECT routed, feature, model, provider, routed_from, band, SUM(calls), SUM(input_tokens), "
        "SUM(output_tokens), SUM(cache_read_tokens), TOTAL(cost_usd), SUM(priced), TOTAL(baseline_cost_usd), "
        "MIN(min_confidence), SUM(feedback), SUM(scored), TOTAL(score_sum) "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY 1, 2, 3, 4, 5, 6",
        params,
    ).fetchall()
    for routed, feature, model, provider, routed_from, band, *sums in rows:
        calls, inp, out, cached, cost, priced, baseline, low, n, scored, score_sum = sums
        if routed == 1 and band == OUT_OF_RANGE_BAND:
            return False
        if routed == 0:
            key = (feature, model, provider, None if band < 0 else band)
            if calls:
                sums_row = {"calls": calls, "input": inp, "output": out, "cache_read": cached}
                groups.add_unrouted(key, {**sums_row, "cost": cost, "priced": priced})
        else:
            key = (feature, routed_from or None, band)
            if calls:
                groups.add_routed(key, {"calls": calls, "cost": cost, "baseline_cost": baseline}, low)
        if n:
            groups.add_rated((routed, *key), n, scored, score_sum)
    return True


def _add_raw(groups: _Groups, rollup: Rollup, query: Query, start: float, end: float) -> None:
    """Raw calls of ``[start, end)`` into the groups, each put in its band as the fold does."""
    sql, params = calls_where(query, start=start, end=end)
    for r in rollup.rows(
        f"SELECT c.feature, c.model, c.provider, c.input_tokens <= {SHORT_PROMPT_TOKENS} AS short, "
        "COUNT(*) AS calls, TOTAL(c.input_tokens) AS input, TOTAL(c.output_tokens) AS output, "
        "TOTAL(c.cache_read_tokens) AS cache_read, TOTAL(c.cost_usd) AS cost, TOTAL(c.priced) AS priced "
        f"FROM model_calls c WHERE {sql} AND c.feature IS NOT NULL AND c.routed = 0 GROUP BY 1, 2, 3, 4",
        params,
    ):
        groups.add_unrouted((r["feature"], r["model"], r["provider"], r["short"]), r)
    for r in rollup.rows(
        "SELECT c.feature, c.routed_from, c.router_confidence, COUNT(*) AS calls, TOTAL(c.cost_usd) AS cost, "
        f"TOTAL(c.baseline_cost_usd) AS baseline_cost FROM model_calls c WHERE {sql} AND c.routed = 1 "
        "AND c.router_confidence IS NOT NULL AND c.feature IS NOT NULL "
        "GROUP BY c.feature, c.routed_from, c.router_confidence",
        params,
    ):
        confidence = r["router_confidence"]
        groups.add_routed((r["feature"], r["routed_from"], confidence_band(confidence)), r, confidence)
    # feedback: one group per (feature, model, provider, short) of unrouted calls and per
    # (feature, baseline model, confidence) of routed ones; the columns that do not apply are NULL
    for r in rollup.rows(
        "SELECT c.routed AS routed, c.feature AS feature, "
        "CASE WHEN c.routed = 0 THEN c.model END AS model, "
        "CASE WHEN c.routed = 0 THEN c.provider END AS provider, "
        f"CASE WHEN c.routed = 0 THEN c.input_tokens <= {SHORT_PROMPT_TOKENS} END AS short, "
        "CASE WHEN c.routed = 1 THEN c.routed_from END AS routed_from, "
        "CASE WHEN c.routed = 1 THEN c.router_confidence END AS router_confidence, "
        "COUNT(*) AS n, COUNT(f.score) AS scored, TOTAL(f.score) AS score_sum "
        "FROM feedback f JOIN model_calls c ON c.request_id = f.request_id "
        f"WHERE {sql} AND c.feature IS NOT NULL AND c.routed IN (0, 1) GROUP BY 1, 2, 3, 4, 5, 6, 7",
        params,
    ):
        if r["routed"] == 0:
            key: tuple[Any, ...] = (0, r["feature"], r["model"], r["provider"], r["short"])
        elif r["router_confidence"] is not None:
            key = (1, r["feature"], r["routed_from"], confidence_band(r["router_confidence"]))
        else:
            continue  # routed without a confidence: no check reads it
        groups.add_rated(key, r["n"], r["scored"], r["score_sum"])


def _mean(acc: dict[str, float]) -> float | None:
    return acc["sum"] / acc["scored"] if acc["scored"] else None


def _facts(groups: _Groups) -> CallFacts:
    unrouted_calls: dict[tuple[str, str], int] = defaultdict(int)
    short_usage = []
    for (feature, model, provider, short), acc in sorted(groups.unrouted.items(), key=_sort_key):
        unrouted_calls[(feature, model)] += int(acc["calls"])
        if short == 1:
            short_usage.append({"feature": feature, "model": model, "provider": provider, "short": 1, **acc})
    # a (feature, model) spans providers and prompt lengths: its mean is the pooled one
    pooled: dict[tuple[str, str], dict[str, float]] = defaultdict(_rated_sums)
    short_feedback, routed_feedback = [], []
    for key, acc in groups.rated.items():
        if key[0] == 0:
            _, feature, model, provider, short = key
            p = pooled[(feature, model)]
            for name in ("n", "scored", "sum"):
                p[name] += acc[name]
            if short == 1:
                row = {"feature": feature, "model": model, "provider": provider}
                short_feedback.append({**row, "n": acc["n"], "score": _mean(acc)})
        else:
            _, feature, routed_from, band = key
            row = {"feature": feature, "routed_from": routed_from, "band": band_edge(band)}
            routed_feedback.append({**row, "n": acc["n"], "score": _mean(acc)})
    return CallFacts(
        short_usage=short_usage,
        short_feedback=short_feedback,
        unrouted_calls=dict(unrouted_calls),
        unrouted_feedback={
            (feature, model): {"feature": feature, "model": model, "n": int(acc["n"]), "score": _mean(acc)}
            for (feature, model), acc in pooled.items()
        },
        routed_usage=[
            {
                "feature": feature,
                "routed_from": routed_from,
                "band": band_edge(band),
                "router_confidence": acc["min"],
                **{n: acc[n] for n in _ROUTED_SUMS},
            }
            for (feature, routed_from, band), acc in groups.routed.items()
        ],
        routed_feedback=routed_feedback,
    )


def _sort_key(item: tuple[tuple[Any, ...], Any]) -> tuple[Any, ...]:
    # SQL's GROUP BY order (NULL first), which the cheaper-model check's tie-breaking follows
    return tuple((v is not None, v) for v in item[0])
