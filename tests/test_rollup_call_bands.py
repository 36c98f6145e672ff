"""The call band tables (migrations 4, 10 and 13): calls and their feedback by band, folded per batch and backfilled."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from exporters.rollup import MIGRATIONS, RollupWriter, migrate, open_database, schema_version
from exporters.rollup.bands import (
    CONFIDENCE_THRESHOLDS,
    OUT_OF_RANGE_BAND,
    SHORT_PROMPT_TOKENS,
    confidence_band,
    stage_band,
)
from exporters.rollup.rows import prepare_rows
from nexus_otel.events import FeedbackEvent, ModelCallEvent
from tests.rollup_data import (
    copy_rollup,
    drop_migration_6,
    model_call,
    query_rows,
    redo_migrations_from,
    seeded_events,
    utc,
)

START = utc("2026-02-04T20:00:00")  # Wednesday: the two days cross a week boundary (Thursday 00:00 UTC)
WEEK = 7 * 86400
COLUMNS = (
    "bucket_start, team, feature, model, provider, routed, routed_from, band, calls, input_tokens, "
    "output_tokens, cache_read_tokens, cost_usd, priced, baseline_cost_usd, min_confidence, feedback, scored, "
    "score_sum"
)


def _table(path, table: str = "call_band_day") -> dict[tuple, tuple]:
    return {r[:8]: r[8:] for r in query_rows(path, f"SELECT {COLUMNS} FROM {table}")}


def _global(path, table: str) -> dict[tuple, tuple]:
    """A ``call_band_global_*`` table keyed as the team tables, with team ``*``."""
    columns = COLUMNS.replace("team, ", "")
    return {(r[0], "*", *r[1:7]): r[7:] for r in query_rows(path, f"SELECT {columns} FROM {table}")}


def _by_week(rows: dict[tuple, tuple], width: int = WEEK, *, over_teams: bool = False) -> dict[tuple, list]:
    """Rows added up per epoch-aligned week (or ``width``), as call_band_week should hold them;
    ``over_teams``: over every team too (team ``*``), as the global tables should."""
    out: dict[tuple, list] = {}
    for (start, team, *key), row in rows.items():
        k = (start // width * width, "*" if over_teams else team, *key)
        acc = out.get(k)
        if acc is None:
            out[k] = list(row)
            continue
        for i, v in enumerate(row):
            if i == 7:  # min_confidence
                acc[i] = v if acc[i] is None else (acc[i] if v is None else min(acc[i], v))
            else:
                acc[i] += v
    return out


def _reference(events, width: int = 86400) -> dict[tuple, list]:
    """call_band_day (or the table of ``width``) computed in Python from the events (what bands.py documents)."""
    calls = {e.request_id: e for e in events if isinstance(e, ModelCallEvent)}
    out: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0.0, 0, 0.0, None, 0, 0, 0.0])

    def key(c: ModelCallEvent) -> tuple | None:
        routed = int(c.routed)
        if c.feature is None or (routed == 1 and c.router_confidence is None) or routed not in (0, 1):
            return None
        if routed == 0:
            band = int(c.input_tokens <= SHORT_PROMPT_TOKENS)
        elif 0 <= c.router_confidence <= 1:
            band = confidence_band(c.router_confidence)
        else:
            band = OUT_OF_RANGE_BAND
        bucket = int(c.timestamp) // width * width
        routed_from = (c.routed_from or "") if routed else ""
        return (bucket, c.team or "", c.feature, c.model, c.provider, routed, routed_from, band)

    for c in calls.values():
        k = key(c)
        if k is None:
            continue
        acc = out[k]
        acc[0] += 1
        acc[1] += c.input_tokens
        acc[2] += c.output_tokens
        acc[3] += c.cache_read_tokens
        acc[4] += c.cost_usd or 0.0
        acc[5] += int(c.priced)
        acc[6] += c.baseline_cost_usd or 0.0
        if c.routed:
            acc[7] = c.router_confidence if acc[7] is None else min(acc[7], c.router_confidence)
    for f in events:
        if isinstance(f, FeedbackEvent) and f.request_id in calls:
            k = key(calls[f.request_id])
            if k is not None:
                out[k][8] += 1
                out[k][9] += 1
                out[k][10] += f.score
    return out


def _assert_equal(got: dict[tuple, tuple], want: dict[tuple, list]) -> None:
    assert sorted(got) == sorted(want)
    for k, row in got.items():
        for x, y in zip(row, want[k], strict=True):
            # float sums may differ in their last bits by the order of additions; counts may not
            assert x == (pytest.approx(y, rel=1e-12, abs=1e-15) if isinstance(y, float) else y), (
                k,
                row,
                want[k],
            )


def _events() -> list:
    events = seeded_events(seed=11, start=START, days=2, calls=1500)
    events += [
        # confidences on and next to every band edge, and one outside [0, 1] (a BYO client)
        *(
            model_call(START + 60 * i, f"edge-{i}", feature="qa", routed=True, routed_from="gpt-4o",
                       model="gpt-4o-mini", router_confidence=c)
            for i, c in enumerate([*CONFIDENCE_THRESHOLDS, *(math.nextafter(t, 0) for t in CONFIDENCE_THRESHOLDS),
                                   0.0, 1.0, 0.35, 1.5])
        ),
        # exactly at the prompt-size boundary, and one above
        model_call(START + 5, "short-edge", feature="qa", input_tokens=SHORT_PROMPT_TOKENS),
        model_call(START + 6, "long-edge", feature="qa", input_tokens=SHORT_PROMPT_TOKENS + 1),
        FeedbackEvent(timestamp=START + 9, request_id="never-recorded", score=0.3),
    ]  # fmt: skip
    random.Random(3).shuffle(events)  # feedback often lands in a batch before its call's
    return events


def _write(path, events) -> None:
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 97):
        writer.write(events[i : i + 97])
    # a re-delivery folds through the SQL grouping, with a call whose feedback came batches ago
    late = model_call(START + 3600, "late", feature="chat", input_tokens=10, cost_usd=0.5, priced=True)
    writer.write([FeedbackEvent(timestamp=START + 3700, request_id="late", score=0.9)])
    writer.write([*events[:40], late])
    writer.close()
    events.append(late)
    events.append(FeedbackEvent(timestamp=START + 3700, request_id="late", score=0.9))


def test_bands_agree_with_the_confidence_rounding_they_stand_for():
    rng = random.Random(1)
    for c in [rng.random() for _ in range(20000)] + [i / 1000 for i in range(1001)]:
        assert stage_band(1, 0, c) == confidence_band(c), c
    for k, t in enumerate(CONFIDENCE_THRESHOLDS, start=1):
        assert confidence_band(t) == k
        assert confidence_band(math.nextafter(t, 0)) == k - 1
    assert stage_band(0, SHORT_PROMPT_TOKENS, 0.0) == 1
    assert stage_band(0, SHORT_PROMPT_TOKENS + 1, 0.0) == 0


def test_call_band_day_equals_the_calls_and_their_feedback(tmp_path):
    events = _events()
    path = tmp_path / "rollup.db"
    _write(path, events)
    got = _table(path)
    _assert_equal(got, _reference(events))
    weeks = _table(path, "call_band_week")
    _assert_equal(weeks, _by_week(got))
    hours = _table(path, "call_band_hour")
    _assert_equal(hours, _reference(events, 3600))
    assert len({k[0] for k in hours}) > 40
    _assert_equal(got, _by_week(hours, 86400))
    assert len({k[0] for k in weeks}) == 2
    assert any(k[7] == OUT_OF_RANGE_BAND for k in got)
    assert sum(r[8] for r in got.values()) > 200  # plenty of feedback was folded
    for table, team_table, width in _GLOBAL_TABLES:
        over_teams = _global(path, table)
        _assert_equal(over_teams, _by_week(_table(path, team_table), width, over_teams=True))
        assert len(over_teams) < len(_table(path, team_table))
    # ... some of it written batches before its call (the pending path)
    at = {getattr(e, "request_id", None): i for i, e in enumerate(events) if isinstance(e, ModelCallEvent)}
    early = [
        e
        for i, e in enumerate(events)
        if isinstance(e, FeedbackEvent) and at.get(e.request_id, -1) // 97 > i // 97
    ]
    assert len(early) > 50
    # feedback on a call never recorded waits; the late call's feedback did not
    assert query_rows(path, "SELECT request_id FROM call_band_pending") == [("never-recorded",)]


_GLOBAL_TABLES = [
    ("call_band_global_hour", "call_band_hour", 3600),
    ("call_band_global_day", "call_band_day", 86400),
    ("call_band_global_week", "call_band_week", WEEK),
]


def test_migration_13_backfills_what_the_fold_writes(tmp_path):
    events = _events()
    path = tmp_path / "rollup.db"
    _write(path, events)
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    redo_migrations_from(copy, 13)
    for table, _, _ in _GLOBAL_TABLES:
        folded = _global(path, table)
        assert folded
        _assert_equal(_global(copy, table), {k: list(v) for k, v in folded.items()})


def test_migration_4_backfills_what_the_fold_writes(tmp_path):
    events = _events()
    path = tmp_path / "rollup.db"
    _write(path, events)
    folded, folded_weeks = _table(path), _table(path, "call_band_week")
    db = open_database(path)
    for table in ("call_band_day", "call_band_week", "call_band_pending", "fold_marks"):
        db[table].drop()
    drop_migration_6(db)
    db.execute("DELETE FROM _migrations WHERE version >= 4")
    db.conn.commit()
    assert schema_version(db) == 3
    assert [m.version for m in migrate(db)] == [m.version for m in MIGRATIONS[3:]]
    db.close()
    _assert_equal(_table(path), {k: list(v) for k, v in folded.items()})
    _assert_equal(_table(path, "call_band_week"), {k: list(v) for k, v in folded_weeks.items()})
    assert query_rows(path, "SELECT request_id FROM call_band_pending") == [("never-recorded",)]


def test_migration_10_backfills_the_hours_the_folds_counted(tmp_path):
    """Upgrading while the writer's newest rows wait for their fold: the backfill takes the rows at
    or below the fold marks, the next fold the rest, and every (feedback, call) pair counts once."""
    events = _events()
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None, fold_interval_s=3600, fold_rows=10**6)
    cut = len(events) - 300
    for i in range(0, cut, 97):
        writer.write(events[i : min(i + 97, cut)])
    writer.write_rows(prepare_rows(events[cut:]), defer_fold=True)  # feedback and calls, unfolded
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    writer.close()
    marks = query_rows(copy, "SELECT last_id FROM fold_marks WHERE source = 'model_calls'")[0][0]
    assert marks < query_rows(copy, "SELECT MAX(id) FROM model_calls")[0][0]
    redo_migrations_from(copy, 10)
    RollupWriter(copy, retention_days=None).close()  # folds what the marks left
    want = _reference(events, 3600)
    _assert_equal(_table(copy, "call_band_hour"), want)
    _assert_equal(_table(path, "call_band_hour"), want)
