"""``error_day`` and ``feedback_day``: failed calls by type and feedback by model, per UTC day.

``/api/analytics`` lists failed calls by provider and error type, and both it and
``/api/analytics/models`` score each model by its feedback. Both read raw rows for the
whole range (at 10M events, 90 days: ~250k failed calls and ~500k feedback rows, 0.2 and
0.4 s, most of it SQLite grouping them). These tables keep the same counts per day and
the few keys those answers group and scope by, so the recommender reads whole days from
them and only the partial days at the range's edges from raw rows
(``recommender.store.events``).

* ``error_day``: (day, team, project, provider, error_type) -> failed calls. A missing
  team or project is ``''``, a missing error type ``'unknown'``, as the readers show them.
* ``feedback_day``: (day, team, project, model) -> feedback rows, rows with a score, and
  the sum of the scores; only feedback that names its model itself. Feedback that does not
  takes the rated call's model, which the call may not have told yet when the feedback is
  folded, so readers take those rows from the raw table (an index holds exactly them).

Folded from the raw rows above the fold marks, in the fold's transaction; migration 8
fills them from the raw rows at or below the marks. ``day`` is ``YYYY-MM-DD`` (UTC).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

import sqlite_utils

from .rows import columns_of

__all__ = [
    "ERROR_DAY_KEY",
    "FEEDBACK_DAY_KEY",
    "UNNAMED_FEEDBACK_INDEX",
    "backfill_event_days",
    "create_event_day_tables",
    "file_errors",
    "fold_event_days",
]

ERROR_DAY_KEY: Final = ("day", "team", "project", "provider", "error_type")
FEEDBACK_DAY_KEY: Final = ("day", "team", "project", "model")
#: Feedback naming no model, by time: the rows ``feedback_day`` leaves to the raw table.
UNNAMED_FEEDBACK_INDEX: Final = "idx_feedback_unnamed_model_ts"

_ERRORS_SQL: Final = f"""
INSERT INTO error_day ({", ".join(ERROR_DAY_KEY)}, errors)
SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), provider,
       COALESCE(error_type, 'unknown'), COUNT(*)
FROM model_calls WHERE id > :after AND id <= :upto AND outcome = 'error' GROUP BY 1, 2, 3, 4, 5
ON CONFLICT ({", ".join(ERROR_DAY_KEY)}) DO UPDATE SET errors = error_day.errors + excluded.errors
"""
_FEEDBACK_SQL: Final = f"""
INSERT INTO feedback_day ({", ".join(FEEDBACK_DAY_KEY)}, feedback, scored, score_sum)
SELECT date(ts, 'unixepoch'), COALESCE(team, ''), COALESCE(project, ''), model,
       COUNT(*), COUNT(score), TOTAL(score)
FROM feedback WHERE id > :after AND id <= :upto AND model IS NOT NULL GROUP BY 1, 2, 3, 4
ON CONFLICT ({", ".join(FEEDBACK_DAY_KEY)}) DO UPDATE SET
    feedback = feedback_day.feedback + excluded.feedback,
    scored = feedback_day.scored + excluded.scored,
    score_sum = feedback_day.score_sum + excluded.score_sum
"""
_NO_LIMIT: Final = 2**63 - 1
_ERROR_COLUMNS: Final = tuple(
    columns_of("model_calls").index(c) for c in ("ts", "team", "project", "provider", "outcome", "error_type")
)
_ERRORS_UPSERT: Final = (
    f"INSERT INTO error_day ({', '.join(ERROR_DAY_KEY)}, errors) VALUES (?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({', '.join(ERROR_DAY_KEY)}) DO UPDATE SET errors = error_day.errors + excluded.errors"
)


def create_event_day_tables(db: sqlite_utils.Database) -> None:
    """Create ``error_day``, ``feedback_day`` and the index of feedback naming no model (migration 8)."""
    text = ", ".join(f"{k} TEXT NOT NULL" for k in ERROR_DAY_KEY)
    db.execute(
        f"CREATE TABLE error_day ({text}, errors INTEGER NOT NULL, "
        f"PRIMARY KEY ({', '.join(ERROR_DAY_KEY)})) WITHOUT ROWID"
    )
    text = ", ".join(f"{k} TEXT NOT NULL" for k in FEEDBACK_DAY_KEY)
    db.execute(
        f"CREATE TABLE feedback_day ({text}, feedback INTEGER NOT NULL, scored INTEGER NOT NULL, "
        f"score_sum REAL NOT NULL, PRIMARY KEY ({', '.join(FEEDBACK_DAY_KEY)})) WITHOUT ROWID"
    )
    db.execute(f"CREATE INDEX {UNNAMED_FEEDBACK_INDEX} ON feedback (ts) WHERE model IS NULL")


def fold_event_days(
    conn: sqlite3.Connection, *, calls_after: int, feedback_after: int, calls: bool = True
) -> None:
    """Add the failed calls and feedback above the given row ids (inside the fold's transaction).

    ``calls=False``: the failed calls were added from memory (:func:`file_errors`).
    """
    if calls:
        conn.execute(_ERRORS_SQL, {"after": calls_after, "upto": _NO_LIMIT})
    conn.execute(_FEEDBACK_SQL, {"after": feedback_after, "upto": _NO_LIMIT})


def file_errors(
    conn: sqlite3.Connection, calls: Sequence[Sequence[Any]], *, day_of: Callable[[float], str]
) -> None:
    """Add the failed ones of new ``model_calls`` rows (``rows.py`` layout), grouped in memory as
    ``_ERRORS_SQL`` groups them (2 % of the calls: a filter instead of SQL reading every row).

    ``day_of`` gives ``date(ts, 'unixepoch')``; the caller has checked every time is in its range.
    """
    ts_at, team_at, project_at, provider_at, outcome_at, type_at = _ERROR_COLUMNS
    counts = Counter(
        (
            day_of(row[ts_at]),
            "" if row[team_at] is None else row[team_at],
            "" if row[project_at] is None else row[project_at],
            row[provider_at],
            "unknown" if row[type_at] is None else row[type_at],
        )
        for row in calls
        if row[outcome_at] == "error"
    )
    if counts:
        conn.executemany(_ERRORS_UPSERT, [(*key, errors) for key, errors in counts.items()])


def backfill_event_days(conn: sqlite3.Connection, *, calls_upto: int, feedback_upto: int) -> None:
    """Fill the tables from the raw rows at or below the fold marks (migration 8)."""
    conn.execute(_ERRORS_SQL, {"after": 0, "upto": calls_upto})
    conn.execute(_FEEDBACK_SQL, {"after": 0, "upto": feedback_upto})
