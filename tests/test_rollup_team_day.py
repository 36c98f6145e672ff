"""Migration 3's tables (``user_team_day``, its features, ``feature_use_day``): folded per batch, backfilled."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exporters.rollup import MIGRATIONS, RollupWriter, migrate, open_database, schema_version
from nexus_otel.events import FeatureUseEvent
from tests.rollup_data import (
    drop_migration_6,
    model_call,
    query_rows,
    reference_user_team_days,
    seeded_events,
    utc,
)

START = utc("2026-01-30T20:00:00")
TEAM_TABLES = ("user_team_day", "user_team_day_features", "feature_use_day")


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).date().isoformat()


def _snapshot(path) -> dict[str, list[tuple]]:
    return {t: sorted(query_rows(path, f"SELECT * FROM {t}"), key=repr) for t in TEAM_TABLES}


def test_user_team_day_holds_each_teams_share_of_a_users_day(tmp_path):
    # seeded users change team and project from call to call, many times a day
    events = seeded_events(seed=5, start=START, days=2, calls=2000)
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 333):
        writer.write(events[i : i + 333])
    writer.close()
    want_days, want_features = reference_user_team_days(events)
    got = query_rows(
        path,
        "SELECT day, team, project, user_id, requests, input_tokens, cost_usd, feature_uses, first_seen, "
        "last_seen FROM user_team_day",
    )
    assert len(got) == len(want_days)
    assert len({(d, u) for d, _, _, u, *_ in got}) < len(got)  # users did switch teams within a day
    for day, team, project, user, requests, tokens, cost, uses, first, last in got:
        want = want_days[(day, team, project, user)]
        assert (requests, tokens, uses) == (want["requests"], want["input_tokens"], want["feature_uses"])
        assert cost == pytest.approx(want["cost_usd"], rel=1e-9, abs=1e-12)
        assert (first, last) == (want["first_seen"], want["last_seen"])
    features = {r[:5]: [r[5], r[6]] for r in query_rows(path, "SELECT * FROM user_team_day_features")}
    assert features == want_features
    uses: dict[tuple[str, ...], float] = {}
    for e in events:
        if isinstance(e, FeatureUseEvent) and e.feature is not None:
            key = (_day(e.timestamp), e.team or "", e.project or "", e.feature)
            uses[key] = uses.get(key, 0) + e.count
    assert {r[:4]: r[4] for r in query_rows(path, "SELECT * FROM feature_use_day")} == uses
    # the per-team rows add up to user_day's
    per_user = query_rows(path, "SELECT day, user_id, SUM(requests), MIN(first_seen), MAX(last_seen) FROM "
                           "user_team_day GROUP BY 1, 2 ORDER BY 1, 2")  # fmt: skip
    assert per_user == query_rows(
        path, "SELECT day, user_id, requests, first_seen, last_seen FROM user_day ORDER BY 1, 2"
    )


def test_migration_3_backfills_what_the_fold_writes(tmp_path):
    """An existing rollup gets the table from its raw events: the same rows as folding batch by batch."""
    events = seeded_events(seed=9, start=START, days=2, calls=1500)
    events.append(
        FeatureUseEvent(timestamp=START + 7, user_id="user-1", team=None, feature="export", count=3)
    )
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 200):
        writer.write(events[i : i + 200])
    # a re-delivery folds through the SQL grouping: both fold paths fed the tables
    writer.write([*events[:50], model_call(START + 3600, "late", user_id="user-2", team="search")])
    writer.close()
    folded = _snapshot(path)
    assert folded["user_team_day"]
    assert folded["user_team_day_features"]

    # turn the file back into a version-2 rollup, as written before this migration existed
    db = open_database(path)
    for table in (*TEAM_TABLES, "call_band_day", "call_band_week", "call_band_pending", "fold_marks"):
        db[table].drop()
    drop_migration_6(db)
    db.execute("DELETE FROM _migrations WHERE version >= 3")
    db.conn.commit()
    assert schema_version(db) == 2
    assert [m.version for m in migrate(db)] == [m.version for m in MIGRATIONS[2:]]
    db.close()
    backfilled = _snapshot(path)
    for table in TEAM_TABLES:
        assert len(backfilled[table]) == len(folded[table]), table
        for a, b in zip(backfilled[table], folded[table], strict=True):
            # Sums of floats may differ in the last bits by grouping order; keys and counts may not.
            assert len(a) == len(b), table
            for x, y in zip(a, b, strict=True):
                assert x == (pytest.approx(y, rel=1e-12) if isinstance(y, float) else y), (table, a, b)


def test_prune_keeps_user_team_day(tmp_path):
    path = tmp_path / "rollup.db"
    now = utc("2026-03-15T00:00:00")
    writer = RollupWriter(path, retention_days=30)
    writer.write(
        [model_call(now - 40 * 86400, "old", user_id="u", team="t"), model_call(now - 60, "new", user_id="u")]
    )
    writer.prune(now=now)
    writer.close()
    assert query_rows(path, "SELECT COUNT(*) FROM model_calls") == [(1,)]
    assert query_rows(path, "SELECT team, requests FROM user_team_day ORDER BY day") == [("t", 1), ("", 1)]
