"""Opening a rollup file and running write transactions on it.

Durability: the journal is WAL and ``synchronous=FULL`` by default, so every
commit fsyncs the WAL before it returns. The collector acknowledges an event
batch only after its commit returned, so "acknowledged" means "on disk", even
across a power loss. ``synchronous=NORMAL`` would survive a process crash
(``kill -9``) but could lose the last commits on power loss, which would break
that promise; it is available for users who accept that trade.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Literal

import sqlite_utils

__all__ = ["Synchronous", "immediate_transaction", "open_database"]

Synchronous = Literal["FULL", "NORMAL"]

#: How long a statement waits for another process' write lock (the CLI, the recommender).
BUSY_TIMEOUT_MS = 10_000


def open_database(
    path: str | os.PathLike[str], *, synchronous: Synchronous = "FULL", readonly: bool = False
) -> sqlite_utils.Database:
    """A sqlite-utils Database on ``path`` in WAL mode, shareable between threads (callers lock)."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, got {synchronous!r}")
    if readonly:
        conn = sqlite3.connect(
            f"file:{os.fspath(path)}?mode=ro",
            uri=True,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
    else:
        conn = sqlite3.connect(os.fspath(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    if not readonly:
        db.enable_wal()
        db.execute(f"PRAGMA synchronous={synchronous}")
    return db


@contextlib.contextmanager
def immediate_transaction(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception.

    IMMEDIATE takes the write lock up front, so a read-then-write inside the
    transaction cannot fail half-way because another process wrote meanwhile.
    """
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
