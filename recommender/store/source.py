"""Which rows answer a time range exactly, as one SQL source of aggregate-shaped rows.

The rollup keeps the same sums at minute, hour and day resolution, and the raw
calls for the retention period. A range is covered greedily by the coarsest
buckets that fit inside it (a 30-day range that starts mid-afternoon reads a
few minute rows, some hour rows and 29 day rows), and any part that is not on
a minute boundary is read from the raw calls. Every segment yields rows with
the aggregate tables' columns, so callers sum them without caring where they
came from. Filtering by user needs the raw calls: the aggregates carry no user.

When every dimension a caller groups or filters by is one of a projection's
(``exporters.rollup.projections``: the same sums by team, project and feature, or by
team, project, model, provider and routing, or token and cost sums by feature, model and
outcome) and it holds every sum asked, the range is covered by that
projection's whole weeks, days and hours instead, and only its partial hours come from
``agg_minute`` and the raw calls: a 90-day model breakdown reads ~10k rows instead of ~290k.
Whole hours come from ``team_hour`` when it holds everything asked (filters by team or
project only, no dimension but those, integer sums only: the answer is then exactly
agg_hour's, from one row per hour and team/project instead of hundreds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporters.rollup.projections import PROJECTIONS, Projection
from exporters.rollup.schema import AGG_DIMENSIONS, CALL_ROW_EXPRESSIONS, agg_sum_columns
from exporters.rollup.team_hours import TEAM_HOUR_EXACT_SUMS, TEAM_HOUR_FILTERS

from .user_calls import user_calls_in_range

__all__ = ["ALL_COLUMNS", "RAW", "SUM_COLUMNS", "Segment", "Source", "projection_for", "segments", "source"]

RAW = "model_calls"
SUM_COLUMNS: tuple[str, ...] = agg_sum_columns()
_LEVELS: tuple[tuple[int, str], ...] = ((86400, "agg_day"), (3600, "agg_hour"), (60, "agg_minute"))
#: filter name -> column; the same name in raw and aggregate rows
FILTER_COLUMNS: frozenset[str] = frozenset({"team", "project", "model", "provider", "feature", "user_id"})


@dataclass(frozen=True, slots=True)
class Segment:
    table: str
    start: float
    end: float


def segments(
    start: float,
    end: float,
    *,
    max_width: int = 86400,
    raw_only: bool = False,
    projection: Projection | None = None,
) -> list[Segment]:
    """Cover ``[start, end)`` with the fewest rows: whole buckets up to ``max_width``, raw at the edges.

    With a ``projection``, whole weeks, days and hours come from its tables.
    """
    if end <= start:
        return []
    if raw_only:
        return [Segment(RAW, start, end)]
    if projection is None:
        levels = [(w, t) for w, t in _LEVELS if w <= max_width]
    else:
        widths = [(w, projection.table(w)) for w in projection.widths]
        if projection.narrowest > 60:
            widths.append(_LEVELS[-1])
        levels = [(w, t) for w, t in widths if w <= max_width]
    out: list[Segment] = []
    t = start
    while t < end:
        for width, table in levels:
            if t % width == 0 and t + width <= end:
                # whole buckets up to `end`, or up to the boundary where a coarser bucket fits
                stop = math.floor(end / width) * width
                for coarser, _ in levels:
                    if coarser > width:
                        boundary = math.ceil((t + 1) / coarser) * coarser
                        if boundary + coarser <= end:
                            stop = min(stop, boundary)
                _append(out, table, t, stop)
                t = stop
                break
        else:
            stop = min(math.floor(t / 60) * 60 + 60, end)
            _append(out, RAW, t, stop)
            t = stop
    return out


def _append(out: list[Segment], table: str, start: float, end: float) -> None:
    if out and out[-1].table == table and out[-1].end == start:
        out[-1] = Segment(table, out[-1].start, end)
    else:
        out.append(Segment(table, start, end))


#: Aggregate column -> its value computed from one raw call row (the writer sums the same).
_RAW = {"bucket_start": "CAST(ts / 60 AS INTEGER) * 60", **CALL_ROW_EXPRESSIONS}
ALL_COLUMNS: tuple[str, ...] = ("bucket_start", *AGG_DIMENSIONS, *SUM_COLUMNS)


def _select(table: str, columns: tuple[str, ...]) -> str:
    # only the columns the caller sums: a UNION ALL sub-select copies every column of every row
    if table == RAW:
        return ", ".join(f"{_RAW[c]} AS {c}" for c in columns)
    return ", ".join(columns)


def _filter_column(table: str, name: str, filters: Mapping[str, str]) -> str:
    """The filter's column, as a plain expression where its index would be the wrong one.

    With a team filter but no project filter, SQLite picks the aggregates' (team, project,
    bucket_start) index, which cannot bound the time, and walks every row the team ever had:
    an hour of agg_minute rows for team:search took ~1 s at 10M events. ``+team`` leaves it the
    primary key's bucket_start range.
    """
    if table != RAW and name == "team" and "project" not in filters:
        return "+team"
    return name


_TEAM_HOUR_COLUMNS = frozenset({"bucket_start", "team", "project", *TEAM_HOUR_EXACT_SUMS})


def _team_hours(filters: Mapping[str, str], columns: Sequence[str]) -> bool:
    """Whether ``team_hour`` answers whole hours exactly (``filters``, ``columns``); without a
    filter, ``agg_feature_global_hour`` has fewer rows an hour (~10 against ~18)."""
    return bool(filters) and set(filters) <= TEAM_HOUR_FILTERS and set(columns) <= _TEAM_HOUR_COLUMNS


def projection_for(filters: Mapping[str, str], columns: Sequence[str]) -> Projection | None:
    """The projection with the fewest keys holding every column in ``columns`` and ``filters``, if any."""
    needed = {c for c in columns if c in AGG_DIMENSIONS} | set(filters)
    sums = {c for c in columns if c in SUM_COLUMNS}
    return next((p for p in PROJECTIONS if needed <= set(p.dimensions) and sums <= set(p.sums)), None)


@dataclass(frozen=True, slots=True)
class Source:
    """``sql`` is a parenthesised sub-select (use as ``FROM {sql} AS s``); ``params`` its arguments."""

    sql: str
    params: tuple[object, ...]
    segments: tuple[Segment, ...]


def source(
    start: float,
    end: float,
    filters: Mapping[str, str],
    *,
    max_width: int = 7 * 86400,
    columns: Sequence[str] | None = None,
) -> Source:
    """Aggregate-shaped rows for ``[start, end)`` matching every filter exactly.

    ``columns`` (default: all) are the aggregate columns the rows carry.
    """
    unknown = set(filters) - FILTER_COLUMNS
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}")
    wanted = ALL_COLUMNS if columns is None else tuple(dict.fromkeys(("bucket_start", *columns)))
    bad = set(wanted) - set(ALL_COLUMNS)
    if bad:
        raise ValueError(f"unknown column(s) {sorted(bad)}")
    raw_only = "user_id" in filters
    projection = None if raw_only else projection_for(filters, wanted)
    hour_table = "agg_hour" if projection is None else projection.table(3600)
    team_hours = _team_hours(filters, wanted)
    parts: list[str] = []
    params: list[object] = []
    segs = [
        Segment("team_hour", seg.start, seg.end) if team_hours and seg.table == hour_table else seg
        for seg in segments(start, end, max_width=max_width, raw_only=raw_only, projection=projection)
    ]
    for seg in segs:
        clauses = []
        if seg.table == RAW and "user_id" in filters:
            user_sql, user_params = user_calls_in_range(filters["user_id"], seg.start, seg.end)
            clauses.append(user_sql)
            params.extend(user_params)
        elif seg.table == RAW:
            clauses.append("ts >= ? AND ts < ?")
            params.extend((seg.start, seg.end))
        else:
            clauses.append("bucket_start >= ? AND bucket_start < ?")
            params.extend((int(seg.start), int(seg.end)))
        for name, value in sorted(filters.items()):
            clauses.append(f"{_filter_column(seg.table, name, filters)} = ?")
            params.append(value)
        where = " AND ".join(clauses)
        parts.append(f"SELECT {_select(seg.table, wanted)} FROM {seg.table} WHERE {where}")
    if not parts:
        parts.append(f"SELECT {_select('agg_day', wanted)} FROM agg_day WHERE 0")
    return Source("(" + " UNION ALL ".join(parts) + ")", tuple(params), tuple(segs))
