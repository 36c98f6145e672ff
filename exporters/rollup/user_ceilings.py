"""``user_cost_ceiling``: per (team, project, user), a cost no time range of theirs can exceed.

``/api/analytics/costs`` lists the costliest users of a range. Grouping every per-user
day row of the range by user took 0.35 s for 30 days and 0.9 s for 90 at 10M events
(~10k users a day). With a ceiling per user, the recommender sums the range exactly for
the users with the highest ceilings only, and stops once the next ceiling is below the
last cost it ranked (``recommender.store.spenders``): everyone else costs less.

The ceiling adds the positive part of each call's cost, so that a negative cost (a
sender's correction) cannot leave it below a range that skips the correction. Calls
folded before migration 9 count per (day, team, project, user) as the larger of the day
row's cost and the positive parts of the day's raw calls still kept (retention may have
deleted some), which is at least what a whole-day or a partial-day read of that day can
sum. When costs are never negative, the ceiling is exactly the user's cost so far.
Retention never lowers it; that only makes it looser.

Also here: migration 9 widens the (user_id, ts) index of ``model_calls`` by ``cost_usd``,
``team`` and ``project``, so a user's calls at the partial days of a range are summed, under
the team and project filters too, from the index alone.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import sqlite_utils

__all__ = [
    "USER_CALLS_INDEX",
    "backfill_user_ceilings",
    "create_user_ceiling_table",
    "fold_user_ceilings",
]

#: (user_id, ts, cost_usd, team, project) on ``model_calls``: replaces migration 1's (user_id, ts).
USER_CALLS_INDEX: Final = "idx_model_calls_user_costs"

_FOLD_SQL: Final = """
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
    """Create ``user_cost_ceiling``; swap the user-call index for the covering one (migration 9)."""
    db.execute(
        "CREATE TABLE user_cost_ceiling (team TEXT NOT NULL, project TEXT NOT NULL, user_id TEXT NOT NULL, "
        "ceiling_usd REAL NOT NULL, PRIMARY KEY (team, project, user_id)) WITHOUT ROWID"
    )
    db.execute("DROP INDEX IF EXISTS idx_model_calls_user_id_ts")
    db.execute(f"CREATE INDEX {USER_CALLS_INDEX} ON model_calls (user_id, ts, cost_usd, team, project)")


def fold_user_ceilings(conn: sqlite3.Connection, *, calls_after: int) -> None:
    """Add the calls above ``calls_after`` (inside the fold's transaction)."""
    conn.execute(_FOLD_SQL, (calls_after,))


def backfill_user_ceilings(conn: sqlite3.Connection, *, calls_upto: int) -> None:
    """Fill the table from the folded day rows and raw calls at or below the fold mark (migration 9)."""
    conn.execute(_BACKFILL_SQL, (calls_upto,))
