"""An event sink that commits in a committer process and returns once that process committed.

The collector without ``--spool`` acknowledges a batch only after its commit.
With :class:`~exporters.rollup.writer.RollupWriter` in the collector itself,
decoding requests and committing to SQLite share one interpreter lock, so the
collector uses about one core for both. :class:`ProcessWriter` keeps the same
promise but hands the validated rows to ``python -m exporters.rollup.committer
--stream`` over a pipe and waits for its reply: requests are decoded on one
core while the previous transaction commits on another, and batches that
arrive during a commit are merged into the next one.

If the committer dies, every waiting ``write`` raises (the receiver answers 503
and the sender retries; re-delivery is idempotent) and the next ``write``
starts a new one.
"""

from __future__ import annotations

import logging
import marshal
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from nexus_otel.events import Event

from .committer import FRAME, REPLY
from .connection import Synchronous
from .rows import PreparedRows, prepare_rows
from .writer import RollupWriter, WriteResult

__all__ = ["ProcessWriter"]

log = logging.getLogger(__name__)

_MARSHAL_VERSION = 4
_CLOSE_TIMEOUT_S = 600.0
# A committer that is alive but never replies (a stuck disk, a lock held by another writer)
# must not hold the sender's request forever: it gets a 503 and retries, idempotently.
_COMMIT_TIMEOUT_S = 300.0


@dataclass(slots=True)
class _Reply:
    done: threading.Event = field(default_factory=threading.Event)
    result: WriteResult | None = None
    error: str | None = None


@dataclass(slots=True)
class _Committer:
    process: subprocess.Popen[bytes]
    pending: dict[int, _Reply] = field(default_factory=dict)
    reader: threading.Thread | None = None


class ProcessWriter:
    """``write`` returns after a committer process committed the batch to the rollup at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_days: float | None = 90.0,
        batch_size: int = 20_000,
        synchronous: Synchronous = "FULL",
        commit_timeout_s: float = _COMMIT_TIMEOUT_S,
    ) -> None:
        if commit_timeout_s <= 0:
            raise ValueError(f"commit_timeout_s must be positive, got {commit_timeout_s!r}")
        self.path = os.fspath(path)
        self.commit_timeout_s = commit_timeout_s
        self.retention_days = retention_days
        self.batch_size = batch_size
        self.synchronous = synchronous
        # create and migrate here, so a bad file or path fails the collector's start with its own error
        RollupWriter(self.path, retention_days=retention_days, synchronous=synchronous).close()
        self._lock = threading.Lock()  # one frame on the pipe at a time; guards _seq and restarts
        self._seq = 0
        self._closed = False
        self._committer = self._start()

    def write(self, events: Sequence[Event]) -> WriteResult:
        """Commit ``events``; ``ValueError`` (before anything is sent) for an event that cannot be stored."""
        return self.write_rows(prepare_rows(events))

    def write_rows(self, rows: PreparedRows) -> WriteResult:
        """Commit rows made by :func:`~exporters.rollup.rows.prepare_rows`; return after the commit."""
        if not len(rows):
            return WriteResult(0, 0)
        payload = marshal.dumps(rows.by_table, _MARSHAL_VERSION)
        reply = _Reply()
        with self._lock:
            if self._closed:
                raise RuntimeError("the rollup writer is closed")
            if self._committer.process.poll() is not None:
                self._restart()
            committer = self._committer
            self._seq += 1
            seq = self._seq
            # other writes still waiting: the committer may reply before folding (deferred fold)
            concurrent = bool(committer.pending)
            committer.pending[seq] = reply
            try:
                stdin = committer.process.stdin
                assert stdin is not None
                stdin.write(FRAME.pack(seq, len(payload), concurrent) + payload)
                stdin.flush()
            except OSError as exc:
                committer.pending.pop(seq, None)
                raise RuntimeError(f"the rollup committer is gone: {exc}") from exc
        if not reply.done.wait(self.commit_timeout_s):
            with self._lock:
                committer.pending.pop(seq, None)
            raise RuntimeError(
                f"the rollup committer did not confirm the commit within {self.commit_timeout_s:g} s"
            )
        if reply.error is not None:
            raise RuntimeError(f"rollup commit failed: {reply.error}")
        assert reply.result is not None
        return reply.result

    @property
    def committer_pid(self) -> int:
        """Process id of the current committer (it changes when a dead one is replaced)."""
        return self._committer.process.pid

    def ready(self) -> bool:
        """True while a committer runs; a dead one is replaced here too, not only by the next write."""
        with self._lock:
            if self._closed:
                return False
            if self._committer.process.poll() is not None:
                self._restart()
            return self._committer.process.poll() is None

    def close(self) -> None:
        """Let the committer commit what it was sent, then stop it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            committer = self._committer
        process = committer.process
        try:
            if process.stdin is not None:
                process.stdin.close()  # end of file: the committer commits what it read and exits
            process.wait(timeout=_CLOSE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            log.exception("the rollup committer did not stop; killing it")
            process.kill()
            process.wait()
        if committer.reader is not None:
            committer.reader.join()

    def _restart(self) -> None:
        """With ``_lock`` held: replace the dead committer."""
        log.warning(
            "the rollup committer exited (%s); starting a new one", self._committer.process.returncode
        )
        self._committer = self._start()

    def _start(self) -> _Committer:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the committer runs this same code
        retention = "none" if self.retention_days is None else str(self.retention_days)
        command = [sys.executable, "-m", "exporters.rollup.committer", "--stream", "--rollup", self.path]
        command += ["--batch-size", str(self.batch_size), "--retention-days", retention]
        command += ["--synchronous", self.synchronous]
        command += ["--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        committer = _Committer(process)
        committer.reader = threading.Thread(
            target=self._read_replies, args=(committer,), name="nexus-commit-replies", daemon=True
        )
        committer.reader.start()
        return committer

    def _read_replies(self, committer: _Committer) -> None:
        stdout = committer.process.stdout
        assert stdout is not None
        while True:
            header = stdout.read(REPLY.size)
            if len(header) < REPLY.size:
                break
            seq, inserted, duplicates, error_length = REPLY.unpack(header)
            error = stdout.read(error_length).decode(errors="replace") if error_length else None
            with self._lock:
                reply = committer.pending.pop(seq, None)
            if reply is None:
                continue
            if error is None:
                reply.result = WriteResult(inserted, duplicates)
            reply.error = error
            reply.done.set()
        code = committer.process.wait()
        with self._lock:
            waiting, committer.pending = list(committer.pending.values()), {}
        for reply in waiting:  # committed or not, unknown: the sender retries, idempotently
            reply.error = f"the committer process exited with {code}"
            reply.done.set()
