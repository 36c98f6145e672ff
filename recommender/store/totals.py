"""Sums over a query's range, grouped by dimensions and/or time buckets, plus derived figures."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from exporters.rollup.queries import latency_quantile
from exporters.rollup.schema import AGG_DIMENSIONS, LATENCY_COLUMNS

from ..params import Query
from .reader import Rollup
from .source import SUM_COLUMNS, source

__all__ = ["COST_SUMS", "GROUPABLE", "derived", "grouped", "iter_series", "regroup", "series", "total"]

GROUPABLE: tuple[str, ...] = AGG_DIMENSIONS
#: The sums most figures need; pass ``sums=SUM_COLUMNS`` for latency quantiles and the rest.
COST_SUMS: tuple[str, ...] = ("requests", "errors", "cost_usd", "baseline_cost_usd", "unpriced_requests")


def _check(by: Sequence[str], sums: Sequence[str]) -> str:
    bad = [b for b in by if b not in GROUPABLE]
    if bad:
        raise ValueError(f"cannot group by {bad}; choose from {GROUPABLE}")
    unknown = [c for c in sums if c not in SUM_COLUMNS]
    if unknown:
        raise ValueError(f"unknown sum column(s) {unknown}")
    if "requests" not in sums:
        sums = ("requests", *sums)
    return ", ".join(f"TOTAL({c}) AS {c}" for c in sums)


def grouped(
    rollup: Rollup, query: Query, by: Sequence[str], *, sums: Sequence[str] = SUM_COLUMNS
) -> list[dict[str, object]]:
    """One row of ``sums`` per distinct ``by`` combination (rows with no requests are absent).

    Asking for fewer sums is faster: only those columns are read and added.
    """
    totals = _check(by, sums)
    src = source(query.range.start, query.range.end, query.filter_map, columns=(*by, "requests", *sums))
    keys = ", ".join(by)
    select = f"{keys}, {totals}" if by else totals
    group = f" GROUP BY {keys}" if by else ""
    rows = rollup.rows(f"SELECT {select} FROM {src.sql} AS s{group}", src.params)
    return [_ints(r) for r in rows if r["requests"]]


def total(rollup: Rollup, query: Query, *, sums: Sequence[str] = SUM_COLUMNS) -> dict[str, object]:
    """The sums over the whole query (zeros when nothing matched)."""
    rows = grouped(rollup, query, (), sums=sums)
    return rows[0] if rows else dict.fromkeys(("requests", *sums), 0)


def series(
    rollup: Rollup,
    query: Query,
    *,
    step: int,
    by: Sequence[str] = (),
    sums: Sequence[str] = SUM_COLUMNS,
) -> list[dict[str, object]]:
    """Sums per ``step``-second bucket (aligned to the epoch) in time order; empty buckets are absent."""
    return list(iter_series(rollup, query, step=step, by=by, sums=sums))


def iter_series(
    rollup: Rollup,
    query: Query,
    *,
    step: int,
    by: Sequence[str] = (),
    sums: Sequence[str] = SUM_COLUMNS,
) -> Iterator[dict[str, object]]:
    """:func:`series` as a generator reading the cursor as it goes (for exports)."""
    if step not in (60, 3600, 86400):
        raise ValueError("step must be 60, 3600 or 86400 seconds")
    totals = _check(by, sums)
    src = source(
        query.range.start, query.range.end, query.filter_map, max_width=step, columns=(*by, "requests", *sums)
    )
    keys = ", ".join(("t", *by))
    cursor = rollup.execute(
        f"SELECT CAST(bucket_start / {step} AS INTEGER) * {step} AS t, "
        f"{', '.join(by) + ', ' if by else ''}{totals} "
        f"FROM {src.sql} AS s GROUP BY {keys} ORDER BY {keys}",
        src.params,
    )
    for row in cursor:
        if row["requests"]:
            yield _ints(dict(row))


def regroup(rows: Sequence[dict[str, object]], by: Sequence[str]) -> list[dict[str, object]]:
    """Rows of :func:`grouped` summed again by fewer dimensions, in Python (one scan, many breakdowns)."""
    out: dict[tuple[object, ...], dict[str, object]] = {}
    for row in rows:
        key = tuple(row[b] for b in by)
        acc = out.get(key)
        if acc is None:
            out[key] = {**{b: row[b] for b in by}, **{c: v for c, v in row.items() if c in SUM_COLUMNS}}
            continue
        for column, value in row.items():
            if column in SUM_COLUMNS:
                acc[column] += value  # type: ignore[operator]
    return list(out.values())


def _ints(row: dict[str, object]) -> dict[str, object]:
    # TOTAL() is always REAL; counts read better as ints
    for name, value in row.items():
        if isinstance(value, float) and name not in (
            "cost_usd",
            "baseline_cost_usd",
            "latency_sum_s",
            "ttft_sum_s",
        ):
            row[name] = int(value)
    return row


def derived(row: dict[str, object]) -> dict[str, object]:
    """Ratios and quantiles a person reads from a row of sums."""
    requests = int(row.get("requests") or 0)
    count = int(row.get("latency_count") or 0)
    cumulative = [int(row.get(c) or 0) for c in LATENCY_COLUMNS]
    cost = float(row.get("cost_usd") or 0.0)
    tokens = int(row.get("input_tokens") or 0) + int(row.get("output_tokens") or 0)
    ttft_count = int(row.get("ttft_count") or 0)

    def quantile(q: float) -> float | None:
        value = latency_quantile(cumulative, count, q)
        return None if value is None else round(value, 4)

    return {
        "requests": requests,
        "errors": int(row.get("errors") or 0),
        "error_rate": (int(row.get("errors") or 0) / requests) if requests else 0.0,
        "input_tokens": int(row.get("input_tokens") or 0),
        "output_tokens": int(row.get("output_tokens") or 0),
        "cache_read_tokens": int(row.get("cache_read_tokens") or 0),
        "reasoning_tokens": int(row.get("reasoning_tokens") or 0),
        "cost_usd": round(cost, 6),
        "cost_per_request_usd": round(cost / requests, 8) if requests else 0.0,
        "cost_per_1k_tokens_usd": round(cost / tokens * 1000, 8) if tokens else None,
        "tokens_per_request": (tokens / requests) if requests else 0.0,
        "latency_mean_s": round(float(row.get("latency_sum_s") or 0.0) / count, 4) if count else None,
        "latency_p50_s": quantile(0.5),
        "latency_p95_s": quantile(0.95),
        "latency_p99_s": quantile(0.99),
        "ttft_mean_s": round(float(row.get("ttft_sum_s") or 0.0) / ttft_count, 4) if ttft_count else None,
        "unpriced_requests": int(row.get("unpriced_requests") or 0),
    }
