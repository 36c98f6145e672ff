"""Group a transaction's new raw rows in memory, for the fold stages of ``aggregate``.

``aggregate.fold_new_rows`` groups the rows it finds above the previous row
ids with SQL (one pass computing 41 expressions per row, then a sort). When
the writer knows that every row it handed to ``INSERT OR IGNORE`` was inserted
(no re-delivered request id or event key), the rows are still in memory and
are grouped here instead: by the C twin (``_prefold_c.c``, ~0.8 µs per row)
when it is built, else by :func:`group_rows_python` (one key tuple, a dozen
additions and one ``bisect`` per row, ~4 µs). The C twin files the calls'
``user_calls`` groups in the same pass; after :func:`group_rows_python`,
``user_calls.file_user_calls`` groups them. The minute groups fill the same
stage table and the activity groups go to the same ``user_fold`` as the SQL
grouping's, so both ways give the same aggregates (integer sums equal, float
sums up to the order of additions).

The values the SQL would treat specially (a NaN float SQLite stores as NULL,
times before 1970 or after 9999 where its integer division or ``date()``
differ from Python's) make :func:`stage_rows` return None and the caller
falls back to the SQL grouping.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from .aggregate import MINUTE_STAGE_INSERT
from .band_grouping import group_bands
from .bands import STAGE_INSERT as BAND_STAGE_INSERT
from .c_twins import load_twin
from .event_days import file_errors
from .rows import columns_of
from .schema import AGG_TABLES, LATENCY_BOUNDS_S
from .schema import LAST_DATE_TS as _LAST_TS
from .user_calls import file_user_calls, insert_user_calls

__all__ = ["accelerated", "group_rows_python", "stage_rows"]

_WIDTH = AGG_TABLES["agg_minute"]
_BUCKETS = len(LATENCY_BOUNDS_S)
_DAYS: dict[int, str] = {}


def _day(ts: float) -> str:
    number = int(ts // 86400)
    day = _DAYS.get(number)
    if day is None:
        day = _DAYS[number] = datetime.fromtimestamp(number * 86400, tz=timezone.utc).strftime("%Y-%m-%d")
    return day


#: The row layout the loop below unpacks; rows.py derives it from the event classes, so a new
#: event field fails here at import instead of folding the wrong columns.
_CALL_COLUMNS = (
    "ts", "user_id", "session_id", "team", "project", "feature", "request_id", "model", "response_model",
    "provider", "operation", "server_address", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "baseline_cost_usd", "priced", "latency_s",
    "ttft_s", "streamed", "outcome", "error_type", "routed", "routed_from", "router_confidence",
)  # fmt: skip
_USE_COLUMNS = ("ts", "user_id", "session_id", "team", "project", "feature", "count", "event_key")
if columns_of("model_calls") != _CALL_COLUMNS or columns_of("feature_uses") != _USE_COLUMNS:
    raise ImportError("exporters.rollup.prefold does not match the raw table columns of rows.py")


def stage_rows(
    conn: sqlite3.Connection,
    *,
    calls: Sequence[Sequence[Any]],
    uses: Sequence[Sequence[Any]],
    first_call_id: int,
) -> list[tuple[Any, ...]] | None:
    """Fill the fold's minute and band stages and add the calls to ``user_calls`` and
    ``error_day`` from rows that were all inserted (``calls[n]`` has row id ``first_call_id + n``)
    and return their activity stage rows; None: use the SQL grouping."""
    grouped, user_call_rows = None, None
    if _accelerated is not None:
        grouped = _accelerated.group(
            calls, uses, bounds=LATENCY_BOUNDS_S, width=_WIDTH, last_ts=_LAST_TS, day_of=_day,
            first_call_id=first_call_id,
        )  # fmt: skip
    if grouped is not None:
        *grouped, user_call_rows = grouped
    else:
        grouped = group_rows_python(calls, uses)
    if grouped is None:
        return None
    bands = group_bands(calls)  # the band stage (bands.py): in C when built, else in Python
    if bands is None:
        return None
    staged, activity = grouped
    if staged:
        conn.executemany(MINUTE_STAGE_INSERT, staged)
    if bands:
        conn.executemany(BAND_STAGE_INSERT, bands)
    if user_call_rows is None:
        file_user_calls(conn, calls, first_id=first_call_id)
    else:
        insert_user_calls(conn, user_call_rows)
    file_errors(conn, calls, day_of=_day)
    return activity


def group_rows_python(
    calls: Sequence[Sequence[Any]], uses: Sequence[Sequence[Any]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] | None:
    """The minute and activity stage rows of ``calls`` and ``uses``; None: use the SQL grouping.

    The reference for the C grouping (``_prefold_c.c``) and its fallback.
    """
    minutes: dict[tuple[Any, ...], list[Any]] = {}
    activity: dict[tuple[Any, ...], list[Any]] = {}
    bounds, width, last_ts, day_of = LATENCY_BOUNDS_S, _WIDTH, _LAST_TS, _day
    try:
        for row in calls:
            (
                ts, user, _, team, project, feature, _, model, _, provider, operation, _,
                input_tokens, output_tokens, cache_read, cache_write, reasoning, cost, base, priced,
                latency, ttft, _, outcome, _, routed, _, _,
            ) = row  # fmt: skip
            if not 0.0 <= ts <= last_ts:
                return None
            key = (
                int(ts) // width * width,
                model,
                provider,
                operation,
                feature or "",
                team or "",
                project or "",
                outcome,
                routed,
            )
            sums = minutes.get(key)
            if sums is None:
                sums = minutes[key] = _new_minute()
            sums[0] += 1
            if outcome == "error":
                sums[1] += 1
            sums[2] += input_tokens
            sums[3] += output_tokens
            sums[4] += cache_read
            sums[5] += cache_write
            sums[6] += reasoning
            if cost is not None:
                sums[7] += cost
            if base is not None:
                sums[8] += base
            if priced:
                sums[9] += 1
            else:
                sums[10] += 1
            sums[11] += latency
            if ttft is not None:
                sums[12] += ttft
                sums[13] += 1
            sums[14 + bisect_left(bounds, latency)] += 1
            if user is None:
                continue
            akey = (day_of(ts), user, team, project, feature)
            act = activity.get(akey)
            if act is None:
                # requests, input tokens, output tokens, cost, feature uses, first seen, last seen
                activity[akey] = [1, input_tokens, output_tokens, cost or 0.0, 0, ts, ts]
                continue
            act[0] += 1
            act[1] += input_tokens
            act[2] += output_tokens
            if cost is not None:
                act[3] += cost
            act[5] = min(act[5], ts)
            act[6] = max(act[6], ts)
        for ts, user, _, team, project, feature, count, _ in uses:
            if not 0.0 <= ts <= last_ts:
                return None
            if user is None:
                continue
            akey = (day_of(ts), user, team, project, feature)
            act = activity.get(akey)
            if act is None:
                activity[akey] = [0, 0, 0, 0.0, count, ts, ts]
                continue
            act[4] += count
            act[5] = min(act[5], ts)
            act[6] = max(act[6], ts)
    except TypeError:  # a NULL where the SQL would skip it: let the SQL decide
        return None
    staged = [_minute_row(key, sums) for key, sums in minutes.items()]
    if any(_has_nan(row) for row in staged) or any(_has_nan(a) for a in activity.values()):
        return None
    return staged, [(*key, *sums) for key, sums in activity.items()]


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


_accelerated = load_twin("_prefold_c")


def accelerated() -> bool:
    """True when the C grouping is built and in use."""
    return _accelerated is not None
