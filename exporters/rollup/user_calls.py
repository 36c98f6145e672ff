"""``user_calls``: each folded call's user, keyed by hour first, in place of a ``(user_id, ts)`` index.

A user-filtered read (a ``user:`` scoped key, ``?user_id=``) needs one user's calls in a range.
Migration 1 served it with an index on ``model_calls (user_id, ts)``. Users are random in
that key, so every transaction wrote a page of that index for almost every row it inserted:
the collector's commits of one or two 512-event frames wrote ~3 KB per row more with it than
without it, and it took ~30 % of the committer's CPU per event (``benchmarks/collector``).

``user_calls`` holds the same lookup, ``(hour, user_id, ts, call_id)``, ``WITHOUT ROWID``:

* it is filled by the fold (``aggregate.fold_new_rows``), tens of thousands of rows at once,
  sorted by key: rows of one hour land in that hour's part of the tree, so a fold writes each
  page of the current hour once, not once per transaction;
* one user's calls in ``[a, b)`` are one short range per hour of the key (the reader lists
  the hours), then a rowid lookup per call;
* calls above the fold marks are not in it yet; readers take those (at most one deferred
  fold's worth) from ``model_calls`` by rowid (``recommender.store.user_calls``).

Migration 14 creates it from the folded calls and drops the ``(user_id, ts)`` index; retention
deletes its rows with their calls.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import sqlite_utils

__all__ = [
    "HOUR",
    "USER_CALLS",
    "backfill_user_calls",
    "create_user_calls_table",
    "fold_user_calls",
    "prune_user_calls",
]

HOUR: Final = 3600
USER_CALLS: Final = "user_calls"

_INSERT_SQL = f"""
INSERT OR IGNORE INTO {USER_CALLS} (hour, user_id, ts, call_id)
SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR}, user_id, ts, id FROM model_calls
WHERE id > :after AND id <= :upto AND user_id IS NOT NULL
ORDER BY 1, 2, 3, 4
"""


def create_user_calls_table(db: sqlite_utils.Database) -> None:
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {USER_CALLS} ("
        "hour INTEGER NOT NULL, user_id TEXT NOT NULL, ts REAL NOT NULL, call_id INTEGER NOT NULL, "
        "PRIMARY KEY (hour, user_id, ts, call_id)) WITHOUT ROWID"
    )


def fold_user_calls(conn: sqlite3.Connection, *, calls_after: int, calls_upto: int | None = None) -> int:
    """Add the calls with ``calls_after < id <= calls_upto`` (default: every later one); how many."""
    upto = (1 << 63) - 1 if calls_upto is None else calls_upto
    return conn.execute(_INSERT_SQL, {"after": calls_after, "upto": upto}).rowcount


def backfill_user_calls(conn: sqlite3.Connection, *, calls_upto: int) -> int:
    """Fill the table from the calls folded so far (id <= ``calls_upto``); the next fold adds the rest."""
    return fold_user_calls(conn, calls_after=0, calls_upto=calls_upto)


def prune_user_calls(conn: sqlite3.Connection, *, cutoff: float, calls_upto: int) -> int:
    """Delete the rows of the calls retention deletes (``ts < cutoff``, folded); how many."""
    return conn.execute(
        f"DELETE FROM {USER_CALLS} WHERE hour <= ? AND ts < ? AND call_id <= ?",
        (int(cutoff // HOUR) * HOUR, cutoff, calls_upto),
    ).rowcount
