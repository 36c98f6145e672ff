"""The deferred fold: raw rows committed first, folded later, give the aggregates of folding every write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from exporters.rollup import RollupWriter, prune, rollup_stats
from exporters.rollup.aggregate import fold_marks, max_row_ids
from exporters.rollup.connection import open_database
from exporters.rollup.process_writer import ProcessWriter
from exporters.rollup.rows import prepare_rows
from nexus_otel.events import FeedbackEvent
from tests.rollup_data import model_call, query_rows, seeded_events, utc

START = utc("2026-02-04T20:00:00")
ROOT = Path(__file__).resolve().parent.parent
#: Every table the fold writes, and the feedback waiting for its call.
FOLDED = (
    "agg_minute", "agg_hour", "agg_day", "user_day", "user_day_features", "user_team_day",
    "user_team_day_features", "feature_use_day", "call_band_day", "call_band_week", "call_band_pending",
)  # fmt: skip


def _batches() -> list[list]:
    events = seeded_events(seed=21, start=START, days=2, calls=1200)
    # feedback in an early batch, its call in the last one; and a call whose feedback never comes
    events.insert(0, FeedbackEvent(timestamp=START + 10, request_id="late-call", score=0.8))
    batches = [events[i : i + 150] for i in range(0, len(events), 150)]
    # a re-delivery: its rows were stored, so this fold cannot group from memory
    batches.insert(4, [*batches[1][:30], model_call(START + 20, "fresh", user_id="user-3", feature="chat")])
    batches.append([model_call(START + 3600, "late-call", user_id="user-1", feature="chat", cost_usd=0.4)])
    return batches


def _snapshot(path: Path) -> dict[str, list[tuple]]:
    return {t: sorted(query_rows(path, f"SELECT * FROM {t}"), key=repr) for t in FOLDED}


def _assert_same(got: dict[str, list[tuple]], want: dict[str, list[tuple]]) -> None:
    for table in FOLDED:
        assert len(got[table]) == len(want[table]), table
        for a, b in zip(got[table], want[table], strict=True):
            assert len(a) == len(b), table
            for x, y in zip(a, b, strict=True):
                # float sums may differ in the last bits with the order of additions; nothing else may
                assert x == (pytest.approx(y, rel=1e-9, abs=1e-12) if isinstance(y, float) else y), (
                    table,
                    a,
                    b,
                )


def _calls_in_aggregates(path: Path) -> int:
    return query_rows(path, "SELECT COALESCE(SUM(requests), 0) FROM agg_day")[0][0]


@pytest.fixture(scope="module")
def folded_per_write(tmp_path_factory) -> dict[str, list[tuple]]:
    """The reference: every batch folded in its own write transaction."""
    path = tmp_path_factory.mktemp("inline") / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    for batch in _batches():
        writer.write(batch)
    writer.close()
    snapshot = _snapshot(path)
    assert snapshot["call_band_pending"] == []  # the late call found its feedback
    return snapshot


def _deferring(path: Path, **options: float) -> RollupWriter:
    return RollupWriter(path, retention_days=None, **{"fold_rows": 10**9, "fold_interval_s": 1e9, **options})


def test_deferred_rows_are_committed_at_once_and_folded_later_as_per_write(tmp_path, folded_per_write):
    path = tmp_path / "rollup.db"
    writer = _deferring(path)
    batches = _batches()
    stored = 0
    for batch in batches:
        stored += writer.write_rows(prepare_rows(batch), defer_fold=True).inserted
    raw = query_rows(path, "SELECT COUNT(*) FROM model_calls")[0][0]
    assert raw == 1200 + 2
    assert stored == sum(len(b) for b in batches) - 30  # the re-delivered 30 were stored already
    assert writer.unfolded_rows == sum(len(b) for b in batches)
    assert _calls_in_aggregates(path) == 0  # committed, not folded
    db = open_database(path)
    feedback = query_rows(path, "SELECT COUNT(*) FROM feedback")[0][0]
    uses = query_rows(path, "SELECT COUNT(*) FROM feature_uses")[0][0]
    assert rollup_stats(db, path).unfolded_rows == raw + uses + feedback  # what `rollup stats` shows
    db.close()
    assert writer.fold() == raw + query_rows(path, "SELECT COUNT(*) FROM feature_uses")[0][0]
    assert writer.unfolded_rows == 0
    _assert_same(_snapshot(path), folded_per_write)
    db = open_database(path)
    assert fold_marks(db.conn) == max_row_ids(db.conn)
    assert rollup_stats(db, path).unfolded_rows == 0
    db.close()
    assert writer.fold() == 0  # nothing twice
    writer.close()
    _assert_same(_snapshot(path), folded_per_write)


def test_the_fold_groups_in_sql_when_another_writer_moved_the_marks(tmp_path, folded_per_write):
    """Rows in memory that are no longer exactly the rows above the marks are not used."""
    path = tmp_path / "rollup.db"
    batches = _batches()
    first = _deferring(path)
    for batch in batches[:3]:
        first.write_rows(prepare_rows(batch), defer_fold=True)
    other = RollupWriter(path, retention_days=None)  # opening folds what the first left
    assert _calls_in_aggregates(path) > 0
    other.write(batches[3])
    other.close()
    for batch in batches[4:]:
        first.write_rows(prepare_rows(batch), defer_fold=True)
    first.close()  # folds the rest
    _assert_same(_snapshot(path), folded_per_write)


def test_a_deferred_write_folds_once_it_reaches_fold_rows(tmp_path):
    path = tmp_path / "rollup.db"
    writer = _deferring(path, fold_rows=400)
    calls = [
        [model_call(START + i * 10 + j, f"r-{i}-{j}", user_id="u") for j in range(150)] for i in range(3)
    ]
    writer.write_rows(prepare_rows(calls[0]), defer_fold=True)
    writer.write_rows(prepare_rows(calls[1]), defer_fold=True)
    assert (writer.unfolded_rows, _calls_in_aggregates(path)) == (300, 0)
    writer.write_rows(prepare_rows(calls[2]), defer_fold=True)  # 450 rows >= 400: this one folds
    assert (writer.unfolded_rows, _calls_in_aggregates(path)) == (0, 450)
    writer.close()
    # no deferral at all once the interval has passed
    writer = _deferring(path, fold_interval_s=0)
    writer.write_rows(prepare_rows([model_call(START, "r-x", user_id="u")]), defer_fold=True)
    writer.write_rows(prepare_rows([model_call(START, "r-y", user_id="u")]), defer_fold=True)
    assert (writer.unfolded_rows, _calls_in_aggregates(path)) == (0, 452)
    writer.close()


def test_rows_a_crash_left_unfolded_are_folded_once_on_open(tmp_path, folded_per_write):
    path = tmp_path / "rollup.db"
    script = textwrap.dedent(
        f"""
        import os
        from exporters.rollup import RollupWriter
        from exporters.rollup.rows import prepare_rows
        from tests.test_rollup_deferred_fold import _batches
        writer = RollupWriter({str(path)!r}, retention_days=None, fold_rows=10**9, fold_interval_s=1e9)
        for batch in _batches():
            writer.write_rows(prepare_rows(batch), defer_fold=True)
        os._exit(0)  # no close, no fold: as if killed
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    assert query_rows(path, "SELECT COUNT(*) FROM model_calls")[0][0] == 1202
    assert _calls_in_aggregates(path) == 0
    RollupWriter(path, retention_days=None).close()
    _assert_same(_snapshot(path), folded_per_write)
    RollupWriter(path, retention_days=None).close()  # a second open finds nothing to fold
    _assert_same(_snapshot(path), folded_per_write)


def test_the_committer_folds_a_lone_write_before_it_replies_and_concurrent_ones_soon_after(tmp_path):
    path = tmp_path / "rollup.db"
    writer = ProcessWriter(path, retention_days=None)
    try:
        writer.write([model_call(START, "lone", user_id="u", team="search")])
        assert _calls_in_aggregates(path) == 1  # acknowledged with its aggregates

        def send(n: int) -> None:
            for i in range(20):
                writer.write([model_call(START + i, f"t{n}-{i}-{j}", user_id=f"u{n}") for j in range(50)])

        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert query_rows(path, "SELECT COUNT(*) FROM model_calls")[0][0] == 1 + 4 * 20 * 50
        deadline = time.monotonic() + 10  # folded once the input goes quiet (50 ms)
        while _calls_in_aggregates(path) < 4001 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _calls_in_aggregates(path) == 4001
        assert query_rows(path, "SELECT SUM(requests) FROM user_day") == [(4001,)]
    finally:
        writer.close()


def test_prune_keeps_raw_rows_until_they_are_folded_and_drops_orphaned_pending_feedback(tmp_path):
    path = tmp_path / "rollup.db"
    old = time.time() - 100 * 86400
    writer = _deferring(path)
    events = [model_call(old + i, f"old-{i}", user_id="u", feature="chat") for i in range(20)]
    events.append(FeedbackEvent(timestamp=old, request_id="never-recorded", score=0.2))
    writer.write_rows(prepare_rows(events), defer_fold=True)
    db = open_database(path)
    try:
        assert prune(db, older_than_s=30 * 86400)["model_calls"] == 0  # not folded yet: kept
        assert query_rows(path, "SELECT COUNT(*) FROM model_calls") == [(20,)]
        writer.fold()
        assert query_rows(path, "SELECT request_id FROM call_band_pending") == [("never-recorded",)]
        deleted = prune(db, older_than_s=30 * 86400)
    finally:
        db.close()
        writer.close()
    assert (deleted["model_calls"], deleted["feedback"]) == (20, 1)
    assert _calls_in_aggregates(path) == 20  # the aggregates keep them
    assert query_rows(path, "SELECT COUNT(*) FROM call_band_pending") == [(0,)]
