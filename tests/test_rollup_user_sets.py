"""Migration 6's per-day user bitmaps and migration 11's per-week feature bitmaps: folded per batch
(both fold paths), backfilled, decoded to raw users."""

from __future__ import annotations

from collections import defaultdict

from exporters.rollup import RollupWriter, migrate, open_database
from exporters.rollup.user_sets import bitmap_bytes, bitmap_int, week_of
from nexus_otel.events import FeatureUseEvent
from tests.rollup_data import (
    copy_rollup,
    drop_migration_6,
    model_call,
    query_rows,
    redo_migration_6,
    redo_migrations_from,
    seeded_events,
    utc,
)

START = utc("2026-01-30T20:00:00")

_RAW_ACTIVITY = """
SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), feature, user_id
FROM model_calls WHERE user_id IS NOT NULL
UNION ALL
SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), feature, user_id
FROM feature_uses WHERE user_id IS NOT NULL
"""


def _events():
    # seeded users change team and project from call to call, many times a day; 40 more users
    # appear late, so bitmaps written early are shorter than later ones of the same key
    events = seeded_events(seed=13, start=START, days=3, calls=1800)
    events += [
        model_call(START + 2 * 86400 + 60 * i, f"late-{i}", user_id=f"late-user-{i}", team="search")
        for i in range(40)
    ]
    events.append(
        FeatureUseEvent(timestamp=START + 9, user_id="user-1", team=None, feature="export", count=2)
    )
    return events


def _write(path, events, batch=211) -> None:
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), batch):
        writer.write(events[i : i + batch])
    # a re-delivery folds through the SQL grouping: both fold paths fed the bitmaps
    writer.write([*events[:30], model_call(START + 3600.5, "sql-path", user_id="user-7", team="support")])
    writer.close()


def _decoded(path) -> tuple[dict[tuple, set[str]], dict[tuple, set[str]]]:
    """The bitmaps as sets of user ids, per (day, team, project) and per (…, feature)."""
    users = {o: u for u, o in query_rows(path, "SELECT user_id, ordinal FROM user_ordinals")}

    def decode(blob: bytes) -> set[str]:
        bits = bitmap_int(blob)
        return {users[i] for i in range(bits.bit_length()) if bits >> i & 1}

    active = {tuple(k): decode(b) for *k, b in query_rows(path, "SELECT * FROM active_users_day")}
    features = {tuple(k): decode(b) for *k, b in query_rows(path, "SELECT * FROM feature_users_day")}
    return active, features


def _reference(path) -> tuple[dict[tuple, set[str]], dict[tuple, set[str]]]:
    active: dict[tuple, set[str]] = defaultdict(set)
    features: dict[tuple, set[str]] = defaultdict(set)
    for day, team, project, feature, user in query_rows(path, _RAW_ACTIVITY):
        active[(day, team, project)].add(user)
        if feature is not None:
            features[(day, team, project, feature)].add(user)
    return dict(active), dict(features)


def _ordinals_are_dense(path) -> None:
    ordinals = sorted(o for (o,) in query_rows(path, "SELECT ordinal FROM user_ordinals"))
    assert ordinals == list(range(len(ordinals)))
    users = query_rows(path, f"SELECT COUNT(DISTINCT user_id) FROM ({_RAW_ACTIVITY})")[0][0]
    assert len(ordinals) == users


def test_bitmaps_hold_each_days_users_per_team_project_and_feature(tmp_path):
    path = tmp_path / "rollup.db"
    _write(path, _events())
    active, features = _decoded(path)
    want_active, want_features = _reference(path)
    assert active == want_active
    assert features == want_features
    assert len(active) > 20
    assert len(features) > 50
    _ordinals_are_dense(path)
    # bitmaps are stored as short as their highest bit allows (no trailing zero bytes)
    for (blob,) in query_rows(
        path, "SELECT bitmap FROM active_users_day UNION ALL SELECT bitmap FROM feature_users_day"
    ):
        assert blob[-1] != 0
        assert bitmap_bytes(bitmap_int(blob)) == blob


def test_or_of_bitmaps_of_different_length_pads_the_shorter_one():
    short, long = bitmap_bytes(0b101), bitmap_bytes(1 << 20 | 1 << 3)
    assert (len(short), len(long)) == (1, 3)
    assert bitmap_int(bitmap_bytes(bitmap_int(short) | bitmap_int(long))) == 1 << 20 | 1 << 3 | 0b101
    assert bitmap_int(b"") == 0
    assert bitmap_int(None) == 0


def test_migration_6_backfills_the_same_sets_as_the_fold(tmp_path):
    events = _events()
    path = tmp_path / "rollup.db"
    _write(path, events)
    folded = _decoded(path)
    folded_ordinals = dict(query_rows(path, "SELECT user_id, ordinal FROM user_ordinals"))
    redo_migration_6(path)
    assert _decoded(path) == folded
    _ordinals_are_dense(path)
    # the backfill numbers users by their first event, as a fold of time-ordered batches does
    backfilled_ordinals = dict(query_rows(path, "SELECT user_id, ordinal FROM user_ordinals"))
    assert set(backfilled_ordinals) == set(folded_ordinals)
    first = dict(query_rows(path, "SELECT user_id, MIN(first_seen) FROM user_team_day GROUP BY user_id"))
    assert sorted(backfilled_ordinals, key=backfilled_ordinals.get) == sorted(
        first, key=lambda u: (first[u], u)
    )


def test_time_ordered_batches_number_users_as_the_backfill_does(tmp_path):
    events = sorted(_events(), key=lambda e: e.timestamp)
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 150):
        writer.write(events[i : i + 150])
    writer.close()
    folded = {
        t: query_rows(path, f"SELECT * FROM {t} ORDER BY 1, 2")
        for t in ("user_ordinals", "active_users_day", "feature_users_day")
    }
    db = open_database(path)
    drop_migration_6(db)
    db.execute("DELETE FROM _migrations WHERE version >= 6")
    db.conn.commit()
    migrate(db)
    db.close()
    for table, rows in folded.items():
        assert query_rows(path, f"SELECT * FROM {table} ORDER BY 1, 2") == rows, table


def test_prune_keeps_the_bitmaps(tmp_path):
    path = tmp_path / "rollup.db"
    now = utc("2026-03-15T00:00:00")
    writer = RollupWriter(path, retention_days=30)
    writer.write(
        [model_call(now - 40 * 86400, "old", user_id="u", team="t"), model_call(now - 60, "new", user_id="v")]
    )
    writer.prune(now=now)
    writer.close()
    assert query_rows(path, "SELECT COUNT(*) FROM model_calls") == [(1,)]
    assert query_rows(path, "SELECT day, team FROM active_users_day ORDER BY day") == [
        ("2026-02-03", "t"),
        ("2026-03-14", ""),
    ]
    assert query_rows(path, "SELECT user_id, ordinal FROM user_ordinals ORDER BY ordinal") == [
        ("u", 0),
        ("v", 1),
    ]


def _week_bitmaps(path) -> dict[tuple, int]:
    return {tuple(k): bitmap_int(b) for *k, b in query_rows(path, "SELECT * FROM feature_users_week")}


def test_week_bitmaps_are_the_or_of_their_days_folded_or_backfilled(tmp_path):
    # Tuesday to Friday of the next week: three epoch-aligned weeks (they start on Thursdays)
    events = seeded_events(seed=19, start=utc("2026-02-03T20:00:00"), days=10, calls=1500)
    path = tmp_path / "rollup.db"
    _write(path, events)
    want: dict[tuple, int] = defaultdict(int)
    for day, team, project, feature, blob in query_rows(path, "SELECT * FROM feature_users_day"):
        want[(week_of(day), team, project, feature)] |= bitmap_int(blob)
    assert _week_bitmaps(path) == want
    assert sorted({k[0] for k in want}) == ["2026-01-29", "2026-02-05", "2026-02-12"]
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    redo_migrations_from(copy, 11)
    assert _week_bitmaps(copy) == want


def test_week_of_is_the_epoch_aligned_thursday():
    assert week_of("1970-01-01") == "1970-01-01"
    assert week_of("2026-02-04") == "2026-01-29"
    assert week_of("2026-02-05") == "2026-02-05"
    assert week_of("2026-02-11") == "2026-02-05"
