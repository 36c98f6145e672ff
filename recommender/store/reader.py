"""Read connections to the rollup: one per thread, read-only, opened lazily.

The recommender never writes the collector's tables; it keeps its own results
(anomalies, the alert inbox) in tables added by a rollup migration, written
through :meth:`Rollup.writer`.

An answer made of independent reads runs them side by side (:meth:`Rollup.concurrently`):
SQLite steps a statement without Python's GIL, so two reads on two connections use two
cores. Each read is its own snapshot of the file, as the reads of an answer always were,
except inside :meth:`Rollup.snapshot`, where they run one after another in it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from exporters.rollup.connection import BUSY_TIMEOUT_MS, immediate_transaction, open_database
from exporters.rollup.migrations import migrate

from .ordinals import UserOrdinals

__all__ = ["READ_WORKERS", "Rollup"]

#: Threads that run the reads :meth:`Rollup.concurrently` hands off (the caller's thread runs one more).
READ_WORKERS = min(4, os.cpu_count() or 1)


class Rollup:
    """The rollup at ``path``, created and migrated on first use if it does not exist.

    ``read_workers``: threads for :meth:`concurrently` (0: every read in the caller's thread).
    """

    def __init__(self, path: str | os.PathLike[str], *, read_workers: int = READ_WORKERS) -> None:
        if read_workers < 0:
            raise ValueError("read_workers must be >= 0")
        self.path = os.fspath(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._migrated = False
        self._read_workers = read_workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
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

    def concurrently(self, *reads: Callable[[], Any]) -> list[Any]:
        """Run ``reads`` (functions of no arguments) side by side and return their results in order.

        The first runs in the calling thread, the others on the reader threads, each on that
        thread's connection. They run one after another when there are no reader threads, when
        called from a reader thread (a read handed off never waits for another) or inside
        :meth:`snapshot`. An exception is raised once every read has finished.
        """
        pool = self._reader_pool()
        if pool is None or len(reads) < 2 or getattr(self._local, "reader", False):
            return [read() for read in reads]
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.in_transaction:
            return [read() for read in reads]
        futures = [pool.submit(read) for read in reads[1:]]
        try:
            first = reads[0]()
        finally:
            for future in futures:
                future.exception()  # wait for every read before anything is raised
        return [first, *(future.result() for future in futures)]

    def _reader_pool(self) -> ThreadPoolExecutor | None:
        if self._read_workers == 0:
            return None
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._read_workers, thread_name_prefix="nexus-rollup-read", initializer=self._mark_reader
                )
            return self._pool

    def _mark_reader(self) -> None:
        self._local.reader = True

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
        """Close this thread's connection and stop the reader threads (which close theirs)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
