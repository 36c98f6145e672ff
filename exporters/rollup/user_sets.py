"""Per-day sets of active users as bitmaps, so distinct-user counts over many days are OR + popcount.

The recommender's distinct-user figures (DAU/WAU/MAU, active users, churn, new users,
retention, users per feature) over whole UTC days were ``COUNT(DISTINCT user_id)``-style
reads of every (day, user) row of ``user_day``/``user_team_day`` in the range: ~100k rows
for 90 days at 1M events, millions at 10M, each turned into a Python tuple. A day's users
as one bitset is one row per (day, team, project) instead; the users of a range are the
OR of its days, and a count is a popcount (``int.bit_count``).

Tables (migration 6; aggregates, kept forever like ``user_team_day``):

``user_ordinals``
    ``user_id`` (primary key) -> ``ordinal`` (UNIQUE): a dense integer per user, 0, 1, 2 …
    in the order users were first folded (within one fold, by their first event, then id),
    so a bitmap is as long as the number of users ever seen, not the size of an id hash.
``active_users_day``
    Primary key ``(day, team, project)`` (``WITHOUT ROWID``; a missing team or project is
    ``''``, split as ``user_team_day`` splits them), ``bitmap``: bit ``i`` (byte ``i // 8``,
    bit ``i % 8``, little-endian) is set when the user with ordinal ``i`` had an event that
    day in that team and project. The bitmap is as long as its highest bit needs: two
    bitmaps of different length are OR-ed by padding the shorter one with zeros, which
    ``int.from_bytes(b, "little")`` does by itself.
``feature_users_day``
    Primary key ``(day, team, project, feature)``, ``bitmap``: the same for the users who
    touched that feature (by a call or a feature use), as ``user_team_day_features``.
``feature_users_week`` (migration 11)
    The same per epoch-aligned 7-day week (``week``: its first day, a Thursday, as the other
    week tables align): the OR of its days. Users per feature over 90 days read ~16k day
    bitmaps at 10M events (20k users: 2.5 kB each, 0.1 s); whole weeks read a seventh of them.

The fold (:func:`fold_user_sets`) takes the same activity stage rows as ``user_fold``; it
reads back the stored bitmaps of the days a batch touches (one or two days: a few dozen
to a few hundred rows, one statement per table), ORs the batch's bits into them in Python
and writes them back. ``benchmarks/recommender/user_set_fold.py`` measures that against an
upsert calling a registered OR function, per call on synthetic batches (20k Zipf users, 18
teams and projects, 10 features; CPU of the fold step alone): 3.3 vs 3.4 µs at 5,000-call
batches, 7.6 vs 7.0 µs at 500, so about the same; the function would also have to be
registered on every connection that might fold (the writer, ``rollup migrate``, other
tools) or the fold fails, so the OR stays in Python. Reading the stored bitmaps back key by
key instead of by day (the first version) cost about 4.1 and 9.6 µs in a quick run.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Final

import sqlite_utils

__all__ = [
    "FEATURE_WEEK_TABLE",
    "USER_SET_TABLES",
    "backfill_feature_weeks",
    "backfill_user_sets",
    "bitmap_bytes",
    "bitmap_int",
    "create_feature_week_table",
    "create_user_set_tables",
    "fold_user_sets",
    "user_ordinals",
    "week_of",
]

#: The tables of this module, in the order they are created.
USER_SET_TABLES: Final = ("user_ordinals", "active_users_day", "feature_users_day")

_ACTIVE_KEY: Final = ("day", "team", "project")
_FEATURE_KEY: Final = ("day", "team", "project", "feature")
FEATURE_WEEK_TABLE: Final = "feature_users_week"
_FEATURE_WEEK_KEY: Final = ("week", "team", "project", "feature")
_EPOCH: Final = date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=4096)
def week_of(day: str) -> str:
    """The first day (``YYYY-MM-DD``) of the epoch-aligned 7-day week holding ``day``."""
    n = date.fromisoformat(day).toordinal() - _EPOCH
    return date.fromordinal(_EPOCH + n - n % 7).isoformat()


def bitmap_int(blob: bytes | None) -> int:
    """The bitmap as an int (bit ``i`` = ordinal ``i``); None and ``b''`` are the empty set."""
    return int.from_bytes(blob, "little") if blob else 0


def bitmap_bytes(bits: int) -> bytes:
    """The stored form of ``bits``: little-endian, as short as its highest set bit allows."""
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def create_user_set_tables(db: sqlite_utils.Database) -> None:
    """Create ``user_ordinals``, ``active_users_day`` and ``feature_users_day`` (migration 6)."""
    db.execute("CREATE TABLE user_ordinals (user_id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL UNIQUE)")
    db.execute(
        "CREATE TABLE active_users_day (day TEXT NOT NULL, team TEXT NOT NULL, project TEXT NOT NULL, "
        "bitmap BLOB NOT NULL, PRIMARY KEY (day, team, project)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE feature_users_day (day TEXT NOT NULL, team TEXT NOT NULL, project TEXT NOT NULL, "
        "feature TEXT NOT NULL, bitmap BLOB NOT NULL, PRIMARY KEY (day, team, project, feature)) "
        "WITHOUT ROWID"
    )


def create_feature_week_table(db: sqlite_utils.Database) -> None:
    """Create ``feature_users_week`` (migration 11)."""
    db.execute(
        f"CREATE TABLE {FEATURE_WEEK_TABLE} (week TEXT NOT NULL, team TEXT NOT NULL, project TEXT NOT NULL, "
        "feature TEXT NOT NULL, bitmap BLOB NOT NULL, "
        "PRIMARY KEY (week, team, project, feature)) WITHOUT ROWID"
    )


def user_ordinals(conn: sqlite3.Connection, first_seen: dict[str, float]) -> dict[str, int]:
    """The ordinals of the users in ``first_seen`` (user -> first event time), new users numbered next.

    New users get the next ordinals in the order of their first event (then their id), so a
    file folded batch by batch in time order numbers users as the migration's backfill does.
    """
    known: dict[str, int] = {}
    users = list(first_seen)
    for i in range(0, len(users), 500):  # bound the statement's parameters
        chunk = users[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        known.update(
            conn.execute(f"SELECT user_id, ordinal FROM user_ordinals WHERE user_id IN ({marks})", chunk)
        )
    new = sorted((t, u) for u, t in first_seen.items() if u not in known)
    if new:
        top = conn.execute("SELECT COALESCE(MAX(ordinal), -1) FROM user_ordinals").fetchone()[0]
        rows = [(user, top + 1 + i) for i, (_, user) in enumerate(new)]
        conn.executemany("INSERT INTO user_ordinals (user_id, ordinal) VALUES (?, ?)", rows)
        known.update(rows)
    return known


def _set_bits(ordinals: Iterable[int]) -> int:
    """One int with the given bits set (a bytearray first: shifting an int per bit copies it each time)."""
    ords = list(ordinals)
    buf = bytearray(max(ords) // 8 + 1)
    for o in ords:
        buf[o >> 3] |= 1 << (o & 7)
    return int.from_bytes(buf, "little")


def _merge_into(
    conn: sqlite3.Connection, table: str, key: tuple[str, ...], sets: dict[tuple, set[int]]
) -> None:
    """OR each key's new bits into its stored bitmap.

    The stored bitmaps are read back by day (or week), one statement for all the batch's days (a
    batch touches one or two days: a few dozen to a few hundred rows), not one per key: per-key
    reads made this slower than an upsert calling a registered OR function.
    """
    days = sorted({k[0] for k in sets})
    stored: dict[tuple, bytes] = {}
    columns = ", ".join(key)
    for i in range(0, len(days), 500):  # bound the statement's parameters
        chunk = days[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT {columns}, bitmap FROM {table} WHERE {key[0]} IN ({marks})"
        for *k, blob in conn.execute(sql, chunk):
            stored[tuple(k)] = blob
    rows = [(*k, bitmap_bytes(_set_bits(ords) | bitmap_int(stored.get(k)))) for k, ords in sets.items()]
    conn.executemany(
        f"INSERT INTO {table} ({columns}, bitmap) VALUES ({', '.join('?' * (len(key) + 1))}) "
        f"ON CONFLICT ({columns}) DO UPDATE SET bitmap = excluded.bitmap",
        rows,
    )


def fold_user_sets(conn: sqlite3.Connection, activity: Sequence[Sequence[Any]]) -> None:
    """Add the users of activity stage rows ``(day, user_id, team, project, feature, …, first_seen,
    last_seen)`` (as given to ``user_fold.fold_user_activity``) to the day bitmaps."""
    if not activity:
        return
    first: dict[str, float] = {}
    for row in activity:
        user, seen = row[1], row[10]
        if user not in first or seen < first[user]:
            first[user] = seen
    ordinal = user_ordinals(conn, first)
    active: dict[tuple, set[int]] = defaultdict(set)
    features: dict[tuple, set[int]] = defaultdict(set)
    for row in activity:
        day, user, team, project, feature = row[:5]
        o = ordinal[user]
        active[(day, team or "", project or "")].add(o)
        if feature is not None:
            features[(day, team or "", project or "", feature)].add(o)
    _merge_into(conn, "active_users_day", _ACTIVE_KEY, active)
    if features:
        _merge_into(conn, "feature_users_day", _FEATURE_KEY, features)
        _merge_into(conn, FEATURE_WEEK_TABLE, _FEATURE_WEEK_KEY, _by_week(features))


def _by_week(sets: dict[tuple, set[int]]) -> dict[tuple, set[int]]:
    """Day-keyed sets (the day first) merged per week."""
    weeks: dict[tuple, set[int]] = defaultdict(set)
    for (day, *rest), ordinals in sets.items():
        weeks[(week_of(day), *rest)] |= ordinals
    return weeks


def backfill_feature_weeks(conn: sqlite3.Connection) -> None:
    """Fill ``feature_users_week`` from ``feature_users_day`` (migration 11)."""
    weeks: dict[tuple, int] = defaultdict(int)
    for day, team, project, feature, blob in conn.execute(
        "SELECT day, team, project, feature, bitmap FROM feature_users_day"
    ):
        weeks[(week_of(day), team, project, feature)] |= bitmap_int(blob)
    conn.executemany(
        f"INSERT INTO {FEATURE_WEEK_TABLE} (week, team, project, feature, bitmap) VALUES (?, ?, ?, ?, ?)",
        [(*k, bitmap_bytes(bits)) for k, bits in weeks.items()],
    )


def backfill_user_sets(conn: sqlite3.Connection) -> None:
    """Fill the three tables from ``user_team_day`` and ``user_team_day_features`` (migration 6).

    Those hold every (day, team, project, user[, feature]) folded so far, kept past the raw
    rows' retention, split exactly as the fold splits the bitmaps. Users are numbered by their
    first event, then id, as a fold of the same rows in time order numbers them.
    """
    first = dict(conn.execute("SELECT user_id, MIN(first_seen) FROM user_team_day GROUP BY user_id"))
    ordinal = user_ordinals(conn, first)
    for table, source, key in (
        ("active_users_day", "user_team_day", _ACTIVE_KEY),
        ("feature_users_day", "user_team_day_features", _FEATURE_KEY),
    ):
        sets: dict[tuple, set[int]] = defaultdict(set)
        columns = ", ".join(key)
        for *k, user in conn.execute(f"SELECT {columns}, user_id FROM {source}"):
            sets[tuple(k)].add(ordinal[user])
        _merge_into(conn, table, key, sets)
