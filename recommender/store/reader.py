"""Read connections to the rollup: one per thread, read-only, opened lazily.

The recommender never writes the collector's tables; it keeps its own results
(anomalies, the alert inbox) in tables added by a rollup migration, written
through :meth:`Rollup.writer`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from exporters.rollup.connection import BUSY_TIMEOUT_MS, immediate_transaction, open_database
from exporters.rollup.migrations import migrate

from .ordinals import UserOrdinals

__all__ = ["Rollup"]


class Rollup:
    """The rollup at ``path``, created and migrated on first use if it does not exist."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._migrated = False
        #: users' bitmap ordinals, read once (see :mod:`recommender.store.ordinals`)
        self.user_ordinals = UserOrdinals()

    def ensure_schema(self) -> None:
        if self._migrated:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = open_database(self.path)
        try:
            migrate(db)
        finally:
            db.conn.close()
        self._migrated = True

    def connection(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.ensure_schema()
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def execute(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> sqlite3.Cursor:
        return self.connection().execute(sql, params)

    def rows(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> list[dict[str, object]]:
        return [dict(row) for row in self.execute(sql, params)]

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's reads inside see one state of the file (a read transaction), however
        many statements they take; nested, the outer snapshot holds."""
        conn = self.connection()
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def writer(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) on a short-lived connection."""
        self.ensure_schema()
        with self._write_lock:
            db = open_database(self.path)
            try:
                with immediate_transaction(db) as conn:
                    yield conn
            finally:
                db.conn.close()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
