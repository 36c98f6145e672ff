"""The rollup writer: event batches in, one committed transaction each, idempotent on request id.

``write`` returns only after the transaction holding its batch committed
(raw rows, aggregate upserts and ``user_day`` upserts together). Threads that
call ``write`` while a commit is running are merged into the next transaction
(group commit): SQLite has one writer at a time and a WAL fsync per commit, so
merging amortises the fsync without delaying a lone caller. A merged
transaction that fails is retried batch by batch, so one bad batch cannot fail
its neighbours.

Deferred fold: a caller that knows more batches are waiting (the committer
process, under load) passes ``defer_fold=True``; that transaction commits the raw
rows only, and a later one folds everything above the fold marks at once, from
the rows still in memory. The per-user and band upserts cost per distinct user
and key, not per row, so folding 50k rows at once costs far less than folding
eight transactions of 4k. The fold still happens within ``fold_rows`` rows and
``fold_interval_s`` seconds, when a transaction is not deferred, on ``fold()``,
``close()``, before pruning, and on open (rows a crash left unfolded).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus_otel.events import Event

from .aggregate import RowMarks, fold_pending
from .binding import insert_rows
from .connection import Synchronous, immediate_transaction, open_database
from .migrations import migrate
from .prefold import stage_rows
from .retention import prune
from .rows import PreparedRows, columns_of, prepare_rows

__all__ = ["RollupWriter", "WriteResult"]

log = logging.getLogger(__name__)

_PRUNE_EVERY_S = 3600.0
_CHECKPOINT_PAGES = 10_000  # ~40 MB of WAL


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``write`` stored: new events, and events already stored (re-deliveries)."""

    inserted: int
    duplicates: int


@dataclass(slots=True)
class _Ticket:
    rows: PreparedRows
    defer_fold: bool = False
    done: bool = False
    result: WriteResult | None = None
    error: BaseException | None = None
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.rows)


@dataclass(slots=True)
class _Unfolded:
    """Rows committed but not yet folded, kept for the in-memory grouping while that stays exact."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    uses: list[tuple[Any, ...]] = field(default_factory=list)
    rows: int = 0
    since: float = 0.0
    # every row handed to INSERT OR IGNORE went in: the lists are exactly the rows above the marks
    exact: bool = True

    def add(self, calls: list[Any], uses: list[Any], *, exact: bool, rows: int) -> None:
        if not self.rows:
            self.since = time.monotonic()
        self.rows += rows
        self.exact &= exact
        if self.exact:
            self.calls.extend(calls)
            self.uses.extend(uses)
        else:
            self.calls.clear()
            self.uses.clear()


class RollupWriter:
    """Commit event batches to the SQLite rollup at ``path`` (created and migrated on open).

    ``retention_days``: raw events older than this are pruned (checked hourly);
    ``None`` keeps them. ``batch_size``: most events one merged transaction
    takes. ``flush_interval_s``: how long a commit waits for concurrent batches
    to join it (0: commit at once; merging still happens under load).
    ``cache_mib``: SQLite page cache of the writer's connection (its default is
    2 MiB; the raw table's indexes outgrow that after ~100k rows).
    ``fold_rows`` and ``fold_interval_s`` bound how many rows and how long a deferred
    fold (``defer_fold=True``) may leave raw rows out of the aggregates.
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
        fold_rows: int = 50_000,
        fold_interval_s: float = 2.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if flush_interval_s < 0:
            raise ValueError("flush_interval_s must be >= 0")
        if retention_days is not None and retention_days <= 0:
            raise ValueError("retention_days must be > 0 or None")
        if cache_mib < 1:
            raise ValueError("cache_mib must be >= 1")
        if fold_rows < 1 or fold_interval_s < 0:
            raise ValueError("fold_rows must be >= 1 and fold_interval_s >= 0")
        self.path = os.fspath(path)
        self.retention_days = retention_days
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.synchronous = synchronous
        self.fold_rows = fold_rows
        self.fold_interval_s = fold_interval_s
        self._unfolded = _Unfolded()
        self._db_closed = False
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
        self.fold()  # rows a crash committed but never folded
        self._maybe_prune()

    # --- public -------------------------------------------------------------------
    def write(self, events: Sequence[Event]) -> WriteResult:
        """Commit ``events``; return after the commit. ``ValueError`` for an event that cannot be stored."""
        return self.write_rows(prepare_rows(events))

    def write_rows(self, rows: PreparedRows, *, defer_fold: bool = False) -> WriteResult:
        """Commit rows made by :func:`~exporters.rollup.rows.prepare_rows` (e.g. read back from the spool).

        ``defer_fold``: the aggregates may take these rows in a later transaction (see the module).
        """
        ticket = _Ticket(rows, defer_fold)
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

    def write_batches(
        self, batches: Sequence[PreparedRows], *, defer_fold: bool = False
    ) -> list[WriteResult | Exception]:
        """Commit several batches together (merged as far as ``batch_size`` allows); a result or error each.

        A merged transaction that fails is retried batch by batch, as for concurrent ``write`` calls.
        ``defer_fold`` as for :meth:`write_rows`.
        """
        tickets = [_Ticket(rows, defer_fold) for rows in batches]
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

    @property
    def unfolded_rows(self) -> int:
        """Rows this writer committed with ``defer_fold`` that the aggregates do not hold yet."""
        return self._unfolded.rows

    def fold(self) -> int:
        """Fold every raw row the aggregates do not hold yet, in one transaction; rows folded."""
        with self._db_lock:
            with immediate_transaction(self._db) as conn:
                folded = fold_pending(conn, stage=self._memory_stage([], []))
            self._unfolded = _Unfolded()
        return folded

    def prune(self, *, now: float | None = None) -> dict[str, int]:
        """Delete raw events past ``retention_days`` now; rows deleted per table."""
        if self.retention_days is None:
            return {}
        self.fold()  # retention keeps unfolded rows: fold them so this prune can take them too
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
        try:
            if self._unfolded.rows and not self._db_closed:
                self.fold()
        finally:
            with self._db_lock:
                self._db_closed = True
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
        size = sum(t.size for t in tickets)
        unfolded = self._unfolded
        defer = (
            all(t.defer_fold for t in tickets)
            and unfolded.rows + size < self.fold_rows
            and (not unfolded.rows or time.monotonic() - unfolded.since < self.fold_interval_s)
        )
        with self._db_lock:
            with immediate_transaction(self._db) as conn:
                for ticket in tickets:
                    inserted = 0
                    for table, given in ticket.rows.by_table.items():
                        before = conn.total_changes
                        rows = insert_rows(conn, table, given)  # in row id order
                        added = conn.total_changes - before
                        inserted += added
                        all_inserted &= added == len(rows)
                        if table == "model_calls":
                            calls.extend(rows)
                        elif table == "feature_uses":
                            uses.extend(rows)
                    results.append(WriteResult(inserted, ticket.size - inserted))
                if not defer:
                    fold_pending(conn, stage=self._memory_stage(calls, uses) if all_inserted else None)
            # committed: only now do these rows count as unfolded (a rolled-back batch never existed)
            if defer:
                unfolded.add(calls, uses, exact=all_inserted, rows=size)
            else:
                self._unfolded = _Unfolded()
        return results

    def _memory_stage(
        self, calls: list[tuple[Any, ...]], uses: list[tuple[Any, ...]]
    ) -> Callable[[sqlite3.Connection, RowMarks, RowMarks], list[tuple[Any, ...]] | None] | None:
        """Group the unfolded rows from memory, if they are exactly the rows above the fold marks.

        They are not when a batch met stored rows (re-delivery) or another process wrote to the
        file: then None, and the fold groups the rows above the marks in SQL.
        """
        unfolded = self._unfolded
        if not unfolded.exact:
            return None
        all_calls = unfolded.calls + calls if unfolded.calls else calls
        all_uses = unfolded.uses + uses if unfolded.uses else uses

        def stage(conn: sqlite3.Connection, marks: RowMarks, tops: RowMarks) -> list[tuple[Any, ...]] | None:
            if tops.calls - marks.calls != len(all_calls) or tops.uses - marks.uses != len(all_uses):
                return None
            # as many new row ids as rows, so row n has id marks.calls + 1 + n (SQLite gives each
            # insert the largest id + 1); the request ids at both ends confirm it
            if all_calls and not _same_request_ids(conn, all_calls, first_id=marks.calls + 1):
                return None
            return stage_rows(conn, calls=all_calls, uses=all_uses, first_call_id=marks.calls + 1)

        return stage

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


_REQUEST_ID = columns_of("model_calls").index("request_id")


def _same_request_ids(conn: sqlite3.Connection, calls: list[tuple[Any, ...]], *, first_id: int) -> bool:
    """True when the first and last of ``calls`` are stored at ``first_id`` and ``first_id + len - 1``."""
    ends = {first_id: calls[0][_REQUEST_ID], first_id + len(calls) - 1: calls[-1][_REQUEST_ID]}
    stored = conn.execute(
        "SELECT id, request_id FROM model_calls WHERE id IN (?, ?)", (first_id, first_id + len(calls) - 1)
    ).fetchall()
    return dict(stored) == ends
