"""``user_calls``: the folded calls of each user, by day, in place of a ``(user_id, ts)`` index.

A user-filtered read (a ``user:`` scoped key, ``?user_id=``) needs one user's calls in a range.
Migration 1 served it with an index on ``model_calls (user_id, ts)``. Users are random in
that key, so every transaction wrote a page of that index for almost every row it inserted:
the collector's commits of one or two 512-event frames wrote ~3 KB per row more with it than
without it, and it took ~30 % of the committer's CPU per event (``benchmarks/collector``).

Migration 14 replaced that index with this table, one row per call keyed by hour, filed by
the fold. That still cost the fold ~2 µs per call (the sort, then a B-tree insert per call
among the hour's rows), and a reader a primary-key seek per hour of its range (2,160 for 90
days). Since migration 15 a row holds a group of calls instead:
``(day_start, user_id, first_call_id) -> first_ts, last_ts, call_ids``, ``WITHOUT ROWID``,
where ``day_start`` is the UTC day's first second and ``call_ids`` a JSON array of
``model_calls`` row ids:

* each fold files one row per (day, user) of its calls, a few thousand rows for tens of
  thousands of calls, grouped in memory (in C, in the same pass as the fold's other
  groups, ``_prefold_c.c``, or by :func:`group_user_calls_python`) or, for rows the writer
  cannot vouch for, in SQL;
* one user's calls in ``[a, b)`` are one short primary-key range per day of the range, the
  groups outside ``[a, b)`` skipped by their first and last times, then ``json_each`` and a
  rowid lookup per call (``recommender.store.user_calls``);
* calls above the fold marks are not in it yet; readers take those (at most one deferred
  fold's worth) from ``model_calls`` by rowid.

Retention deletes the groups whose calls it all deletes and refiles the groups it cuts into,
so the table always lists exactly the folded calls that have a user.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import sqlite_utils

from .schema import LAST_DATE_TS as _LAST_TS

__all__ = [
    "DAY",
    "HOUR",
    "USER_CALLS",
    "create_user_calls_table",
    "create_v14_user_calls",
    "file_user_calls",
    "fold_user_calls",
    "group_user_calls_python",
    "insert_user_calls",
    "prune_user_calls",
    "regroup_v14_user_calls",
]

DAY: Final = 86400
HOUR: Final = 3600  # migration 14's buckets
USER_CALLS: Final = "user_calls"
_COLUMNS: Final = "day_start, user_id, first_call_id, first_ts, last_ts, call_ids"

_FOLD_SQL: Final = f"""
INSERT INTO {USER_CALLS} ({_COLUMNS})
SELECT CAST(ts / {DAY} AS INTEGER) * {DAY}, user_id, MIN(id), MIN(ts), MAX(ts), json_group_array(id)
FROM model_calls WHERE id > :after AND id <= :upto AND user_id IS NOT NULL GROUP BY 1, 2
"""
_FILE_SQL: Final = f"INSERT INTO {USER_CALLS} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
# The calls of a group that are still stored, for the groups retention cuts into.
_KEPT_CALLS: Final = f"FROM json_each({USER_CALLS}.call_ids) j JOIN model_calls c ON c.id = j.value"
_REFILE_SQL: Final = f"""
UPDATE {USER_CALLS} SET call_ids = (SELECT json_group_array(c.id) {_KEPT_CALLS}),
                        first_ts = (SELECT MIN(c.ts) {_KEPT_CALLS})
WHERE day_start <= :day AND first_ts < :cutoff
"""


def create_user_calls_table(db: sqlite_utils.Database, name: str = USER_CALLS) -> None:
    db.execute(
        f"CREATE TABLE {name} (day_start INTEGER NOT NULL, user_id TEXT NOT NULL, "
        "first_call_id INTEGER NOT NULL, first_ts REAL NOT NULL, last_ts REAL NOT NULL, "
        "call_ids TEXT NOT NULL, "
        "PRIMARY KEY (day_start, user_id, first_call_id)) WITHOUT ROWID"
    )


def group_user_calls_python(calls: Sequence[Sequence[Any]], *, first_id: int) -> list[tuple[Any, ...]] | None:
    """``user_calls`` rows of ``calls`` (``rows.py`` layout; ``calls[n]`` has row id ``first_id + n``).

    None: a time or user id the SQL grouping should decide (not a float in range, not a str).
    The reference for the C grouping (``_prefold_c.c``'s third result) and its fallback.
    """
    groups: dict[tuple[int, str], list[Any]] = {}
    for n, row in enumerate(calls):
        ts, user = row[0], row[1]
        if user is None:
            continue
        if type(ts) is not float or type(user) is not str or not 0.0 <= ts <= _LAST_TS:
            return None
        key = (int(ts) // DAY * DAY, user)
        group = groups.get(key)
        if group is None:
            groups[key] = [ts, ts, [first_id + n]]
            continue
        group[0] = min(group[0], ts)
        group[1] = max(group[1], ts)
        group[2].append(first_id + n)
    return [
        (day, user, ids[0], first, last, "[" + ",".join(map(str, ids)) + "]")
        for (day, user), (first, last, ids) in groups.items()
    ]


def file_user_calls(conn: sqlite3.Connection, calls: Sequence[Sequence[Any]], *, first_id: int) -> None:
    """File new calls grouped in memory (``calls[n]`` has row id ``first_id + n``), in the fold's
    transaction; by the SQL grouping when the memory grouping hands them back."""
    rows = group_user_calls_python(calls, first_id=first_id) if calls else []
    if rows is None:
        fold_user_calls(conn, calls_after=first_id - 1, calls_upto=first_id - 1 + len(calls))
    else:
        insert_user_calls(conn, rows)


def insert_user_calls(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """File rows grouped as :func:`group_user_calls_python` groups them, in the fold's transaction."""
    if rows:
        conn.executemany(_FILE_SQL, rows)


def fold_user_calls(conn: sqlite3.Connection, *, calls_after: int, calls_upto: int | None = None) -> int:
    """File the calls with ``calls_after < id <= calls_upto`` (default: every later one), grouped in SQL."""
    upto = (1 << 63) - 1 if calls_upto is None else calls_upto
    return conn.execute(_FOLD_SQL, {"after": calls_after, "upto": upto}).rowcount


def prune_user_calls(conn: sqlite3.Connection, *, cutoff: float) -> None:
    """After retention deleted the folded calls with ``ts < cutoff``: drop their groups, refile cut ones."""
    day = int(cutoff // DAY) * DAY
    conn.execute(f"DELETE FROM {USER_CALLS} WHERE day_start <= ? AND last_ts < ?", (day, cutoff))
    conn.execute(_REFILE_SQL, {"day": day, "cutoff": cutoff})


# --- history: migration 14's one row per call, which migration 15 regroups ------------------------

_V14_FILE_SQL: Final = f"""
INSERT OR IGNORE INTO {USER_CALLS} (hour, user_id, ts, call_id)
SELECT CAST(ts / {HOUR} AS INTEGER) * {HOUR}, user_id, ts, id FROM model_calls
WHERE id <= :upto AND user_id IS NOT NULL ORDER BY 1, 2, 3, 4
"""


def create_v14_user_calls(db: sqlite_utils.Database, *, calls_upto: int) -> None:
    """Migration 14: ``user_calls`` one row per call, ``(hour, user_id, ts, call_id)``, up to the mark."""
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {USER_CALLS} ("
        "hour INTEGER NOT NULL, user_id TEXT NOT NULL, ts REAL NOT NULL, call_id INTEGER NOT NULL, "
        "PRIMARY KEY (hour, user_id, ts, call_id)) WITHOUT ROWID"
    )
    db.execute(_V14_FILE_SQL, {"upto": calls_upto})


def regroup_v14_user_calls(db: sqlite_utils.Database) -> None:
    """Migration 15: migration 14's rows, one per call by hour, regrouped into one row per (day, user)."""
    create_user_calls_table(db, "user_calls_grouped")
    db.execute(
        f"INSERT INTO user_calls_grouped ({_COLUMNS}) "
        f"SELECT (hour / {DAY}) * {DAY}, user_id, MIN(call_id), MIN(ts), MAX(ts), json_group_array(call_id) "
        f"FROM {USER_CALLS} GROUP BY 1, 2"
    )
    db.execute(f"DROP TABLE {USER_CALLS}")
    db.execute(f"ALTER TABLE user_calls_grouped RENAME TO {USER_CALLS}")
