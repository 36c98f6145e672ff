"""Batches grouped in memory (every row new) and batches grouped in SQL (some re-delivered) fold alike."""

from __future__ import annotations

import math

from exporters.rollup import AGG_TABLES, RollupWriter, open_database
from nexus_otel.events import FeatureUseEvent, ModelCallEvent
from tests.rollup_data import model_call, seeded_events, utc

START = utc("2026-01-30T22:00:00")  # two UTC days
TABLES = (
    *AGG_TABLES,
    "user_day",
    "user_day_features",
    "user_team_day",
    "user_team_day_features",
    "feature_use_day",
)


def _tables(path) -> dict[str, list[tuple]]:
    db = open_database(path, readonly=True)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        db.close()


def _same(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> None:
    for table in TABLES:
        assert len(a[table]) == len(b[table]), table
        for x, y in zip(a[table], b[table], strict=True):
            for u, v in zip(x, y, strict=True):
                if isinstance(u, float) or isinstance(v, float):
                    assert math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-12), (table, x, y)
                else:
                    assert u == v, (table, x, y)


def _write(path, batches) -> None:
    writer = RollupWriter(path, retention_days=None)
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        writer.close()


def test_grouping_in_memory_and_in_sql_give_the_same_aggregates(tmp_path) -> None:
    events = seeded_events(seed=11, start=START, days=2, calls=3000)
    batches = [events[i : i + 700] for i in range(0, len(events), 700)]
    in_memory, in_sql = tmp_path / "memory.db", tmp_path / "sql.db"
    _write(in_memory, batches)
    # the first call of each batch is stored alone before its batch, so the batch holds a
    # re-delivery: the writer cannot tell its new rows from memory and groups them in SQL
    firsts = [[next(e for e in b if isinstance(e, ModelCallEvent))] for b in batches]
    _write(in_sql, [x for pair in zip(firsts, batches, strict=True) for x in pair])
    memory, sql = _tables(in_memory), _tables(in_sql)
    assert sum(r[9] for r in memory["agg_day"]) == sum(isinstance(e, ModelCallEvent) for e in events)
    _same(memory, sql)


def test_values_the_sql_treats_specially_still_fold_like_the_sql(tmp_path) -> None:
    """NaN costs (stored as NULL), calls before 1970, NULL latencies: the in-memory grouping steps aside."""
    odd = [
        [model_call(START, "nan", cost_usd=float("nan"), user_id="u")],
        [model_call(-30.5, "early", user_id="u"), model_call(START + 5, "late", user_id="u")],
        [model_call(START + 9, "inf", latency_s=float("inf"), user_id="v", feature="f")],
        [FeatureUseEvent(timestamp=START + 10, user_id="v", feature="g", count=2)],
    ]
    plain, redelivered = tmp_path / "plain.db", tmp_path / "redelivered.db"
    _write(plain, odd)
    _write(redelivered, [x for batch in odd for x in (batch[:1], batch)])
    _same(_tables(plain), _tables(redelivered))
