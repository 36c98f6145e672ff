"""Which rows answer a time range exactly, as one SQL source of aggregate-shaped rows.

The rollup keeps the same sums at minute, hour and day resolution, and the raw
calls for the retention period. A range is covered greedily by the coarsest
buckets that fit inside it (a 30-day range that starts mid-afternoon reads a
few minute rows, some hour rows and 29 day rows), and any part that is not on
a minute boundary is read from the raw calls. Every segment yields rows with
the aggregate tables' columns, so callers sum them without caring where they
came from. Filtering by user needs the raw calls: the aggregates carry no user.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from exporters.rollup.schema import AGG_DIMENSIONS, LATENCY_BOUNDS_S, LATENCY_COLUMNS, agg_sum_columns

__all__ = ["RAW", "SUM_COLUMNS", "Segment", "Source", "segments", "source"]

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


def segments(start: float, end: float, *, max_width: int = 86400, raw_only: bool = False) -> list[Segment]:
    """Cover ``[start, end)`` with the fewest rows: whole buckets up to ``max_width``, raw at the edges."""
    if end <= start:
        return []
    if raw_only:
        return [Segment(RAW, start, end)]
    levels = [(w, t) for w, t in _LEVELS if w <= max_width]
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


def _raw_columns() -> list[str]:
    """Aggregate-shaped columns computed from one raw call row each."""
    return [
        "CAST(ts / 60 AS INTEGER) * 60 AS bucket_start",
        "model",
        "provider",
        "operation",
        "COALESCE(feature, '') AS feature",
        "COALESCE(team, '') AS team",
        "COALESCE(project, '') AS project",
        "outcome",
        "routed",
        "1 AS requests",
        "(outcome = 'error') AS errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "COALESCE(cost_usd, 0.0) AS cost_usd",
        "COALESCE(baseline_cost_usd, 0.0) AS baseline_cost_usd",
        "priced AS priced_requests",
        "(1 - priced) AS unpriced_requests",
        "latency_s AS latency_sum_s",
        "1 AS latency_count",
        *(
            f"(latency_s <= {bound!r}) AS {name}"
            for bound, name in zip(LATENCY_BOUNDS_S, LATENCY_COLUMNS, strict=True)
        ),
        "COALESCE(ttft_s, 0.0) AS ttft_sum_s",
        "(ttft_s IS NOT NULL) AS ttft_count",
    ]


_AGG_SELECT = ", ".join(["bucket_start", *AGG_DIMENSIONS, *SUM_COLUMNS])
_RAW_SELECT = ", ".join(_raw_columns())


@dataclass(frozen=True, slots=True)
class Source:
    """``sql`` is a parenthesised sub-select (use as ``FROM {sql} AS s``); ``params`` its arguments."""

    sql: str
    params: tuple[object, ...]
    segments: tuple[Segment, ...]


def source(start: float, end: float, filters: Mapping[str, str], *, max_width: int = 86400) -> Source:
    """Aggregate-shaped rows for ``[start, end)`` matching every filter exactly."""
    unknown = set(filters) - FILTER_COLUMNS
    if unknown:
        raise ValueError(f"unknown filter(s) {sorted(unknown)}")
    raw_only = "user_id" in filters
    parts: list[str] = []
    params: list[object] = []
    segs = segments(start, end, max_width=max_width, raw_only=raw_only)
    for seg in segs:
        clauses = []
        if seg.table == RAW:
            clauses.append("ts >= ? AND ts < ?")
            params.extend((seg.start, seg.end))
        else:
            clauses.append("bucket_start >= ? AND bucket_start < ?")
            params.extend((int(seg.start), int(seg.end)))
        for name, value in sorted(filters.items()):
            clauses.append(f"{name} = ?")
            params.append(value)
        select = _RAW_SELECT if seg.table == RAW else _AGG_SELECT
        parts.append(f"SELECT {select} FROM {seg.table} WHERE {' AND '.join(clauses)}")
    if not parts:
        parts.append(f"SELECT {_AGG_SELECT} FROM agg_day WHERE 0")
    return Source("(" + " UNION ALL ".join(parts) + ")", tuple(params), tuple(segs))
