"""Group a transaction's new raw rows in Python, for the fold stages of ``aggregate``.

``aggregate.fold_new_rows`` groups the rows it finds above the previous row
ids with SQL (one pass computing 41 expressions per row, then a sort). When
the writer knows that every row it handed to ``INSERT OR IGNORE`` was inserted
(no re-delivered request id or event key), the rows are still in memory and
grouping them here costs about a third of that: one key tuple, a dozen
additions and one ``bisect`` per row. The groups fill the same stage tables
and the same upserts then fold them, so both ways give the same aggregates
(integer sums equal, float sums up to the order of additions).

The values the SQL would treat specially (a NaN float SQLite stores as NULL,
times before 1970 or after 9999 where its integer division or ``date()``
differ from Python's) make :func:`stage_rows` return False and the caller
falls back to the SQL grouping.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .aggregate import ACTIVITY_STAGE_INSERT, MINUTE_STAGE_INSERT
from .rows import columns_of
from .schema import AGG_TABLES, LATENCY_BOUNDS_S

__all__ = ["stage_rows"]

_WIDTH = AGG_TABLES["agg_minute"]
_LAST_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second SQLite's date() formats
_BUCKETS = len(LATENCY_BOUNDS_S)
_CALL = {name: i for i, name in enumerate(columns_of("model_calls"))}
_USE = {name: i for i, name in enumerate(columns_of("feature_uses"))}
_DAYS: dict[int, str] = {}


def _day(ts: float) -> str:
    number = int(ts // 86400)
    day = _DAYS.get(number)
    if day is None:
        day = _DAYS[number] = datetime.fromtimestamp(number * 86400, tz=timezone.utc).strftime("%Y-%m-%d")
    return day


def stage_rows(
    conn: sqlite3.Connection, *, calls: Sequence[Sequence[Any]], uses: Sequence[Sequence[Any]]
) -> bool:
    """Fill the fold's stage tables from rows that were all inserted; False: use the SQL grouping."""
    minutes: dict[tuple[Any, ...], list[Any]] = {}
    activity: dict[tuple[Any, ...], list[Any]] = {}
    i_ts, i_user, i_team, i_project, i_feature = (
        _CALL[c] for c in ("ts", "user_id", "team", "project", "feature")
    )
    i_model, i_provider, i_operation, i_outcome, i_routed = (
        _CALL[c] for c in ("model", "provider", "operation", "outcome", "routed")
    )
    i_in, i_out, i_cr, i_cw, i_rs = (
        _CALL[c]
        for c in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    )
    i_cost, i_base, i_priced, i_lat, i_ttft = (
        _CALL[c] for c in ("cost_usd", "baseline_cost_usd", "priced", "latency_s", "ttft_s")
    )
    bounds = LATENCY_BOUNDS_S
    try:
        for row in calls:
            ts = row[i_ts]
            if not 0.0 <= ts <= _LAST_TS:
                return False
            team, project, feature, outcome = row[i_team], row[i_project], row[i_feature], row[i_outcome]
            key = (
                int(ts) // _WIDTH * _WIDTH,
                row[i_model],
                row[i_provider],
                row[i_operation],
                feature or "",
                team or "",
                project or "",
                outcome,
                row[i_routed],
            )
            cost, base, ttft, latency = row[i_cost], row[i_base], row[i_ttft], row[i_lat]
            sums = minutes.get(key)
            if sums is None:
                sums = minutes[key] = _new_minute()
            sums[0] += 1
            if outcome == "error":
                sums[1] += 1
            sums[2] += row[i_in]
            sums[3] += row[i_out]
            sums[4] += row[i_cr]
            sums[5] += row[i_cw]
            sums[6] += row[i_rs]
            if cost is not None:
                sums[7] += cost
            if base is not None:
                sums[8] += base
            if row[i_priced]:
                sums[9] += 1
            else:
                sums[10] += 1
            sums[11] += latency
            if ttft is not None:
                sums[12] += ttft
                sums[13] += 1
            sums[14 + bisect_left(bounds, latency)] += 1
            user = row[i_user]
            if user is not None:
                _add_activity(
                    activity,
                    (_day(ts), user, team, project, feature),
                    ts,
                    requests=1,
                    input_tokens=row[i_in],
                    output_tokens=row[i_out],
                    cost=cost,
                    feature_uses=0,
                )
        for row in uses:
            ts = row[_USE["ts"]]
            if not 0.0 <= ts <= _LAST_TS:
                return False
            user = row[_USE["user_id"]]
            if user is not None:
                key = (_day(ts), user, row[_USE["team"]], row[_USE["project"]], row[_USE["feature"]])
                _add_activity(
                    activity,
                    key,
                    ts,
                    requests=0,
                    input_tokens=0,
                    output_tokens=0,
                    cost=None,
                    feature_uses=row[_USE["count"]],
                )
    except TypeError:  # a NULL where the SQL would skip it: let the SQL decide
        return False
    staged = [_minute_row(key, sums) for key, sums in minutes.items()]
    if any(_has_nan(row) for row in staged) or any(_has_nan(a) for a in activity.values()):
        return False
    if staged:
        conn.executemany(MINUTE_STAGE_INSERT, staged)
    if activity:
        conn.executemany(ACTIVITY_STAGE_INSERT, [(*key, *sums) for key, sums in activity.items()])
    return True


def _add_activity(
    groups: dict[tuple[Any, ...], list[Any]],
    key: tuple[Any, ...],
    ts: float,
    *,
    requests: int,
    input_tokens: int,
    output_tokens: int,
    cost: float | None,
    feature_uses: int,
) -> None:
    sums = groups.get(key)
    if sums is None:
        # requests, input tokens, output tokens, cost, feature uses, first seen, last seen
        groups[key] = [requests, input_tokens, output_tokens, cost or 0.0, feature_uses, ts, ts]
        return
    sums[0] += requests
    sums[1] += input_tokens
    sums[2] += output_tokens
    if cost is not None:
        sums[3] += cost
    sums[4] += feature_uses
    sums[5] = min(sums[5], ts)
    sums[6] = max(sums[6], ts)


def _new_minute() -> list[Any]:
    # requests, errors, 5 token counts, cost, baseline, priced, unpriced, latency sum, ttft sum,
    # ttft count, then per-bucket (not yet cumulative) latency counts, the last one above all bounds
    return [0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0, 0.0, 0.0, 0] + [0] * (_BUCKETS + 1)


def _minute_row(key: tuple[Any, ...], sums: list[Any]) -> tuple[Any, ...]:
    cumulative, running = [], 0
    for count in sums[14 : 14 + _BUCKETS]:
        running += count
        cumulative.append(running)
    requests = sums[0]
    # the column order of aggregate's minute stage: key, then schema._AGG_SUMS
    return (*key, *sums[:11], sums[11], requests, *cumulative, sums[12], sums[13])


def _has_nan(values: Sequence[Any]) -> bool:
    return any(isinstance(v, float) and math.isnan(v) for v in values)
