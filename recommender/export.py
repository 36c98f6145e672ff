"""Exports: the rows of a query as CSV or JSON, produced a chunk at a time.

Datasets: ``calls`` (one row per model call, from the raw table, so within
retention), ``hourly`` and ``daily`` (sums per bucket and dimension, from the
aggregates, kept forever), ``anomalies`` (every hour the detectors scored, per
scope, with the most deviating feature; scopes as the key may see them).
Rows are read from a cursor and encoded as they go, so memory stays flat
however many rows there are. CSV cells that a
spreadsheet would run as a formula (text starting with ``= + - @``, tab or
carriage return) get a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from exporters.rollup.schema import AGG_DIMENSIONS

from .auth import Principal
from .params import Query, iso_utc
from .store import events
from .store.reader import Rollup
from .store.totals import iter_series

__all__ = [
    "DATASETS",
    "FORMATS",
    "ExportRows",
    "count_rows",
    "csv_chunks",
    "export_rows",
    "json_chunks",
    "neutralise",
]

DATASETS = ("calls", "hourly", "daily", "anomalies")
FORMATS = ("json", "csv")
CALL_COLUMNS = (
    "request_id",
    "ts",
    "time",
    "user_id",
    "session_id",
    "team",
    "project",
    "feature",
    "model",
    "response_model",
    "provider",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "priced",
    "latency_s",
    "ttft_s",
    "streamed",
    "outcome",
    "error_type",
    "routed",
    "routed_from",
    "router_confidence",
)
BUCKET_COLUMNS = (
    "time",
    "t",
    *AGG_DIMENSIONS,
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "latency_sum_s",
    "latency_count",
)
ANOMALY_COLUMNS = (
    "detector", "scope", "time", "window_start", "window_end", "score", "threshold", "is_anomaly",
    "top_feature", "top_z",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CHUNK_ROWS = 1000


def neutralise(value: Any) -> Any:
    """Text a spreadsheet would evaluate is prefixed with ``'``; numbers and other text pass unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@dataclass(frozen=True, slots=True)
class ExportRows:
    columns: tuple[str, ...]
    rows: Iterable[tuple[Any, ...]]


def _call_rows(rollup: Rollup, query: Query) -> Iterator[tuple[Any, ...]]:
    sql, params, _ = events.where("model_calls", query)
    selected = ", ".join("ts" if c == "time" else c for c in CALL_COLUMNS)
    cursor = rollup.connection().execute(
        f"SELECT {selected} FROM model_calls WHERE {sql} ORDER BY ts, id", params
    )
    time_index = CALL_COLUMNS.index("time")
    while True:
        batch = cursor.fetchmany(_CHUNK_ROWS)
        if not batch:
            return
        for row in batch:
            values = tuple(row)
            yield (
                *values[:time_index],
                iso_utc(values[time_index], "milliseconds"),
                *values[time_index + 1 :],
            )


def _bucket_rows(rollup: Rollup, query: Query, step: int) -> Iterator[tuple[Any, ...]]:
    for row in iter_series(rollup, query, step=step, by=AGG_DIMENSIONS):
        row["time"] = iso_utc(float(row["t"]), "milliseconds")
        yield tuple(row[c] for c in BUCKET_COLUMNS)


def _anomaly_rows(rollup: Rollup, query: Query, who: Principal) -> Iterator[tuple[Any, ...]]:
    from .insights.anomalies import scope_clause, visible_scopes

    scopes, _ = visible_scopes(who, query)
    if scopes == []:
        return
    clause, params = scope_clause(scopes)
    cursor = rollup.connection().execute(
        "SELECT detector, scope, window_start, window_end, score, threshold, is_anomaly, "
        "json_extract(features, '$.top_feature'), json_extract(features, '$.top_z') FROM anomaly_scores "
        f"WHERE window_start >= ? AND window_start < ?{clause} ORDER BY window_start, scope, detector",
        [int(query.range.start), query.range.end, *params],
    )
    for row in cursor:
        yield (row[0], row[1], iso_utc(row[2], "milliseconds"), *row[2:])


def export_rows(rollup: Rollup, query: Query, dataset: str, who: Principal | None = None) -> ExportRows:
    """The dataset's columns and a lazy row iterator; ``who`` decides which anomaly scopes show."""
    if dataset == "anomalies":
        return ExportRows(ANOMALY_COLUMNS, _anomaly_rows(rollup, query, who or Principal("cli", "admin")))
    if dataset == "calls":
        return ExportRows(CALL_COLUMNS, _call_rows(rollup, query))
    if dataset in ("hourly", "daily"):
        return ExportRows(BUCKET_COLUMNS, _bucket_rows(rollup, query, 3600 if dataset == "hourly" else 86400))
    raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")


def count_rows(rollup: Rollup, query: Query, dataset: str) -> int | None:
    """How many rows an export will have (for a progress bar); None when it would cost a second pass."""
    if dataset != "calls":
        return None
    sql, params, _ = events.where("model_calls", query)
    return int(rollup.execute(f"SELECT COUNT(*) FROM model_calls WHERE {sql}", params).fetchone()[0])


def csv_chunks(export: ExportRows, *, on_rows: Any = None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(export.columns)
    pending = 0
    for row in export.rows:
        writer.writerow([neutralise(v) for v in row])
        pending += 1
        if pending == _CHUNK_ROWS:
            yield _drain(buffer)
            if on_rows:
                on_rows(pending)
            pending = 0
    yield _drain(buffer)
    if on_rows and pending:
        on_rows(pending)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def json_chunks(
    export: ExportRows, *, header: dict[str, Any], insights: Any = None, on_rows: Any = None
) -> Iterator[str]:
    """One JSON document: ``header``'s fields, ``columns``, ``rows``, ``row_count``, then ``insights``."""
    head = json.dumps(header)[:-1]
    yield f'{head}, "columns": {json.dumps(list(export.columns))}, "rows": ['
    count, parts = 0, []
    for row in export.rows:
        parts.append(("," if count else "") + json.dumps(dict(zip(export.columns, row, strict=False))))
        count += 1
        if len(parts) == _CHUNK_ROWS:
            yield "".join(parts)
            if on_rows:
                on_rows(len(parts))
            parts = []
    if parts:
        yield "".join(parts)
        if on_rows:
            on_rows(len(parts))
    tail = f'], "row_count": {count}'
    if insights is not None:
        tail += f', "insights": {json.dumps(insights)}'
    yield tail + "}"
