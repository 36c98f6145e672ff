"""``user_cost_ceiling``: per (team, project, user), a cost no time range of theirs can exceed.

``/api/analytics/costs`` lists the costliest users of a range. Grouping every per-user
day row of the range by user took 0.35 s for 30 days and 0.9 s for 90 at 10M events
(~10k users a day). With a ceiling per user, the recommender sums the range exactly for
the users with the highest ceilings only, and stops once the next ceiling is below the
last cost it ranked (``recommender.store.spenders``): everyone else costs less.

The ceiling adds the positive part of each call's cost, so that a negative cost (a
sender's correction) cannot leave it below a range that skips the correction. The fold
adds the activity rows' cost sums, which are those positive parts as long as no new call
has a negative cost (a partial index holds exactly the calls that do, so asking costs
nothing on the write path); otherwise that fold sums the raw calls' positive parts in SQL.
Calls folded before migration 9 count per (day, team, project, user) as the larger of the
day row's cost and the positive parts of the day's raw calls still kept (retention may have
deleted some), which is at least what a whole-day or a partial-day read of that day can
sum. When costs are never negative, the ceiling is exactly the user's cost so far.
Retention never lowers it; that only makes it looser.

A covering (user_id, ts, cost_usd) index would make the partial days of the candidates'
ranges cheaper to sum, but 8 more bytes per entry of an index every insert touches cost the
collector's committer ~1.5 µs of CPU per row (15.0 -> 16.5 µs), so it was not added.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final

import sqlite_utils

__all__ = [
    "CALLS_BY_TIME_INDEX",
    "NEGATIVE_COST_INDEX",
    "backfill_user_ceilings",
    "create_user_ceiling_table",
    "fold_user_ceilings",
]

#: (ts, user_id, cost_usd) on ``model_calls``: replaces migration 1's (ts).
CALLS_BY_TIME_INDEX: Final = "idx_model_calls_ts_user_cost"
#: The calls with a negative cost, by row id (a partial index: almost always empty).
NEGATIVE_COST_INDEX: Final = "idx_model_calls_negative_cost"

_UPSERT_SQL: Final = """
INSERT INTO user_cost_ceiling (team, project, user_id, ceiling_usd) VALUES (?, ?, ?, ?)
ON CONFLICT (team, project, user_id) DO UPDATE SET ceiling_usd = ceiling_usd + excluded.ceiling_usd
"""
_NEGATIVE_SQL: Final = "SELECT EXISTS (SELECT 1 FROM model_calls WHERE cost_usd < 0 AND id > ?)"
_POSITIVE_PARTS_SQL: Final = """
INSERT INTO user_cost_ceiling (team, project, user_id, ceiling_usd)
SELECT COALESCE(team, ''), COALESCE(project, ''), user_id, TOTAL(MAX(cost_usd, 0))
FROM model_calls WHERE id > ? AND user_id IS NOT NULL GROUP BY 1, 2, 3
ON CONFLICT (team, project, user_id) DO UPDATE SET ceiling_usd = ceiling_usd + excluded.ceiling_usd
"""

# Every folded call has its (day, team, project, user) row in user_team_day, so the day rows
# lead and the kept raw calls at or below the fold mark join them.
_BACKFILL_SQL: Final = """
INSERT INTO user_cost_ceiling (team, project, user_id, ceiling_usd)
SELECT d.team, d.project, d.user_id, TOTAL(MAX(COALESCE(d.cost_usd, 0), COALESCE(r.positive, 0)))
FROM user_team_day d LEFT JOIN (
    SELECT date(ts, 'unixepoch') AS day, COALESCE(team, '') AS team, COALESCE(project, '') AS project,
           user_id, TOTAL(MAX(cost_usd, 0)) AS positive
    FROM model_calls WHERE id <= ? AND user_id IS NOT NULL GROUP BY 1, 2, 3, 4
) r ON r.day = d.day AND r.team = d.team AND r.project = d.project AND r.user_id = d.user_id
GROUP BY 1, 2, 3
"""


def create_user_ceiling_table(db: sqlite_utils.Database) -> None:
    """Create ``user_cost_ceiling`` and the index of negative-cost calls (migration 9)."""
    db.execute(
        "CREATE TABLE user_cost_ceiling (team TEXT NOT NULL, project TEXT NOT NULL, user_id TEXT NOT NULL, "
        "ceiling_usd REAL NOT NULL, PRIMARY KEY (team, project, user_id)) WITHOUT ROWID"
    )
    db.execute(f"CREATE INDEX {NEGATIVE_COST_INDEX} ON model_calls (id) WHERE cost_usd < 0")
    db.execute("DROP INDEX IF EXISTS idx_model_calls_ts")
    db.execute(f"CREATE INDEX {CALLS_BY_TIME_INDEX} ON model_calls (ts, user_id, cost_usd)")


def fold_user_ceilings(
    conn: sqlite3.Connection, activity: Iterable[Sequence[Any]], *, calls_after: int
) -> None:
    """Add the calls above ``calls_after`` (inside the fold's transaction), from their activity stage
    rows (``user_fold``'s layout) unless one of them has a negative cost."""
    if conn.execute(_NEGATIVE_SQL, (calls_after,)).fetchone()[0]:
        conn.execute(_POSITIVE_PARTS_SQL, (calls_after,))
        return
    ceilings: dict[tuple[str, str, str], float] = {}
    for _, user, team, project, _, requests, _, _, cost, *_ in activity:
        if requests:
            key = (team or "", project or "", user)
            ceilings[key] = ceilings.get(key, 0.0) + cost
    conn.executemany(_UPSERT_SQL, [(*key, cost) for key, cost in ceilings.items()])


def backfill_user_ceilings(conn: sqlite3.Connection, *, calls_upto: int) -> None:
    """Fill the table from the folded day rows and raw calls at or below the fold mark (migration 9)."""
    conn.execute(_BACKFILL_SQL, (calls_upto,))
