"""The rollup writer: event batches in, one committed transaction each, idempotent on request id.

``write`` returns only after the transaction holding its batch committed
(raw rows, aggregate upserts and ``user_day`` upserts together). Threads that
call ``write`` while a commit is running are merged into the next transaction
(group commit): SQLite has one writer at a time and a WAL fsync per commit, so
merging amortises the fsync without delaying a lone caller. A merged
transaction that fails is retried batch by batch, so one bad batch cannot fail
its neighbours.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus_otel.events import Event

from .aggregate import fold_new_rows, max_row_ids
from .connection import Synchronous, immediate_transaction, open_database
from .migrations import migrate
from .prefold import stage_rows
from .retention import prune
from .rows import TABLE_ORDER, PreparedRows, insert_sql, prepare_rows

__all__ = ["RollupWriter", "WriteResult"]

log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 3600.0
_CHECKPOINT_PAGES = 10_000  # ~40 MB of WAL
_INSERT_SQL = {table: insert_sql(table) for table in TABLE_ORDER}


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``write`` stored: new events, and events already stored (re-deliveries)."""

    inserted: int
    duplicates: int


@dataclass(slots=True)
class _Ticket:
    rows: PreparedRows
    done: bool = False
    result: WriteResult | None = None
    error: BaseException | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.rows)


class RollupWriter:
    """Commit event batches to the SQLite rollup at ``path`` (created and migrated on open).

    ``retention_days``: raw events older than this are pruned (checked hourly);
    ``None`` keeps them. ``batch_size``: most events one merged transaction
    takes. ``flush_interval_s``: how long a commit waits for concurrent batches
    to join it (0: commit at once; merging still happens under load).
    ``cache_mib``: SQLite page cache of the writer's connection (its default is
    2 MiB; the raw table's indexes outgrow that after ~100k rows).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_days: float | None = 90.0,
        batch_size: int = 20_000,
        flush_interval_s: float = 0.0,
        synchronous: Synchronous = "FULL",
        cache_mib: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if flush_interval_s < 0:
            raise ValueError("flush_interval_s must be >= 0")
        if retention_days is not None and retention_days <= 0:
            raise ValueError("retention_days must be > 0 or None")
        if cache_mib < 1:
            raise ValueError("cache_mib must be >= 1")
        self.path = os.fspath(path)
        self.retention_days = retention_days
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.synchronous = synchronous
        self._db = open_database(self.path, synchronous=synchronous)
        # the fold stages each transaction's minute and user-day groups in temp tables: keep them in memory
        self._db.execute("PRAGMA temp_store=MEMORY")
        # A 20k-row commit dirties thousands of index pages ((user_id, ts) inserts land all over
        # the index); the default checkpoint after 1000 WAL pages then runs after almost every
        # commit, copying and fsyncing them again. Every commit still fsyncs the WAL (durability).
        self._db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        self._db.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
        self._db_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self._committing = False
        self._closed = False
        self._next_prune = 0.0
        with self._db_lock:
            migrate(self._db)
        self._maybe_prune()

    # --- public -------------------------------------------------------------------
    def write(self, events: Sequence[Event]) -> WriteResult:
        """Commit ``events``; return after the commit. ``ValueError`` for an event that cannot be stored."""
        return self.write_rows(prepare_rows(events))

    def write_rows(self, rows: PreparedRows) -> WriteResult:
        """Commit rows made by :func:`~exporters.rollup.rows.prepare_rows` (e.g. read back from the spool)."""
        ticket = _Ticket(rows)
        if ticket.size == 0:
            return WriteResult(0, 0)
        with self._cond:
            if self._closed:
                raise RuntimeError("the rollup writer is closed")
            self._queue.append(ticket)
            while not ticket.done:
                if self._committing:
                    self._cond.wait()
                    continue
                self._lead_one_commit()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.result is not None
        return ticket.result

    def write_batches(self, batches: Sequence[PreparedRows]) -> list[WriteResult | Exception]:
        """Commit several batches together (merged as far as ``batch_size`` allows); a result or error each.

        A merged transaction that fails is retried batch by batch, as for concurrent ``write`` calls.
        """
        tickets = [_Ticket(rows) for rows in batches]
        with self._cond:
            if self._closed:
                raise RuntimeError("the rollup writer is closed")
            self._queue.extend(t for t in tickets if t.size)
            while not all(t.done for t in tickets if t.size):
                if self._committing:
                    self._cond.wait()
                    continue
                self._lead_one_commit()
        out: list[WriteResult | Exception] = []
        for ticket in tickets:
            error = ticket.error  # _commit stores only Exceptions
            out.append(error if isinstance(error, Exception) else (ticket.result or WriteResult(0, 0)))
        return out

    def prune(self, *, now: float | None = None) -> dict[str, int]:
        """Delete raw events past ``retention_days`` now; rows deleted per table."""
        if self.retention_days is None:
            return {}
        with self._db_lock:
            return prune(self._db, older_than_s=self.retention_days * 86400, now=now)

    def ready(self) -> bool:
        """True when the file is open and writable."""
        if self._closed or not os.access(self.path, os.W_OK):
            return False
        try:
            with self._db_lock:
                self._db.execute("SELECT 1 FROM _migrations LIMIT 1").fetchall()
        except Exception:
            return False
        return True

    def close(self) -> None:
        """Wait for in-flight commits, then close the database. Idempotent."""
        with self._cond:
            self._closed = True
            while self._committing or self._queue:
                self._cond.wait()
        with self._db_lock:
            self._db.close()

    # --- group commit -----------------------------------------------------------------
    def _lead_one_commit(self) -> None:
        """Called with ``_cond`` held and no commit running: commit the queued tickets."""
        self._committing = True
        try:
            if self.flush_interval_s > 0:
                deadline = time.monotonic() + self.flush_interval_s
                while sum(t.size for t in self._queue) < self.batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            taken, total = [], 0
            while self._queue and (not taken or total + self._queue[0].size <= self.batch_size):
                ticket = self._queue.pop(0)
                taken.append(ticket)
                total += ticket.size
            self._cond.release()
            try:
                self._commit(taken)
            finally:
                self._cond.acquire()
        finally:
            self._committing = False
            self._cond.notify_all()
        self._cond.release()
        try:
            self._maybe_prune()
        finally:
            self._cond.acquire()

    def _commit(self, tickets: list[_Ticket]) -> None:
        try:
            results = self._transaction(tickets)
        except Exception as exc:
            if len(tickets) == 1:
                tickets[0].error = exc
                tickets[0].done = True
                return
            log.warning("a merged rollup commit failed (%s); retrying its batches one by one", exc)
            for ticket in tickets:
                self._commit([ticket])
            return
        for ticket, result in zip(tickets, results, strict=True):
            ticket.result = result
            ticket.done = True

    def _transaction(self, tickets: list[_Ticket]) -> list[WriteResult]:
        results: list[WriteResult] = []
        calls: list[tuple[Any, ...]] = []
        uses: list[tuple[Any, ...]] = []
        all_inserted = True
        with self._db_lock, immediate_transaction(self._db) as conn:
            calls_after, uses_after = max_row_ids(conn)
            new_calls = new_uses = False
            for ticket in tickets:
                inserted = 0
                for table, rows in ticket.rows.by_table.items():
                    before = conn.total_changes
                    conn.executemany(_INSERT_SQL[table], rows)
                    added = conn.total_changes - before
                    inserted += added
                    all_inserted &= added == len(rows)
                    if table == "model_calls":
                        new_calls |= added > 0
                        calls.extend(rows)
                    elif table == "feature_uses":
                        new_uses |= added > 0
                        uses.extend(rows)
                results.append(WriteResult(inserted, ticket.size - inserted))
            # every row went in (no re-delivery): group them from memory instead of re-reading them
            stage = (lambda c: stage_rows(c, calls=calls, uses=uses)) if all_inserted else None
            fold_new_rows(
                conn,
                calls_after=calls_after,
                uses_after=uses_after,
                new_calls=new_calls,
                new_uses=new_uses,
                stage=stage,
            )
        return results

    def _maybe_prune(self) -> None:
        if self.retention_days is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY_S
        try:
            deleted = self.prune()
        except Exception:
            log.exception("pruning the rollup failed; it is retried in an hour")
            return
        if any(deleted.values()):
            log.info("pruned raw events older than %s days: %s", self.retention_days, deleted)
