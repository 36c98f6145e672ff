"""A durable spool: acknowledge event batches once fsync'd, commit them to the rollup in another process.

Layout: a directory of segment files. The segment being appended to is
``segment-<n>.open``; a closed one is ``segment-<n>.spool``. A segment is a
sequence of records ``<length:u32 LE><crc32:u32 LE><payload>``, the payload
being one batch of raw-table rows (``M`` + ``marshal`` of ``{table: [row,
...]}``, as :func:`~exporters.rollup.rows.prepare_rows` makes them; a payload
starting with ``[`` is a JSON event batch of earlier versions and is still
read). ``append`` returns after ``fsync``, so an acknowledged batch survives
``kill -9`` and power loss. A torn tail record (a crash mid-append, hence
never acknowledged) fails its length or CRC check and is ignored on replay.

:class:`SpooledWriter` appends in the collector process and closes (renames)
the segment every ``flush_interval_s`` or ``batch_size`` events. A separate
committer process (:mod:`exporters.rollup.committer`) commits closed segments
to the rollup and deletes them, so decoding requests and committing to SQLite
run on different cores instead of sharing one interpreter lock. On start
every segment left behind is closed and replayed before serving. A crash
between commit and delete replays rows the rollup already holds, which the
writer's idempotency on request id (and content key) turns into no-ops; the
same holds when a committer of a killed collector and the next collector's
replay meet on one segment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import marshal
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nexus_otel.events import EVENT_TYPES, Event

from .rows import PreparedRows, prepare_rows
from .writer import RollupWriter, WriteResult

__all__ = ["EventSpool", "SpoolResult", "SpooledWriter", "closed_segments", "remove_segment"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_MAX_RECORD = 1 << 30
_ROWS = b"M"  # marshal is ~20x faster than JSON for these rows; the spool never leaves this machine
_MARSHAL_VERSION = 4
_OPEN, _CLOSED = ".open", ".spool"
#: How long close() lets the committer drain what is spooled before committing the rest itself.
_DRAIN_TIMEOUT_S = 600.0


def _encode(rows: PreparedRows) -> bytes:
    return _ROWS + marshal.dumps(rows.by_table, _MARSHAL_VERSION)


def _decode(payload: bytes) -> PreparedRows:
    if payload[:1] == _ROWS:
        return PreparedRows(marshal.loads(payload[1:]))
    events = []
    for name, values in json.loads(payload):  # a JSON event batch, as spooled before
        cls = EVENT_TYPES[name]
        fields = [f.name for f in dataclasses.fields(cls)]
        events.append(cls(**dict(zip(fields, values, strict=True))))
    return prepare_rows(events)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def closed_segments(directory: str | os.PathLike[str]) -> list[Path]:
    """Closed segment files in ``directory``, oldest first."""
    return sorted(Path(directory).glob(f"segment-*{_CLOSED}"))


def remove_segment(segment: Path) -> None:
    """Delete a committed segment (already gone is fine: another process committed it)."""
    segment.unlink(missing_ok=True)
    _fsync_dir(segment.parent)


def read_segment(segment: Path) -> Iterator[PreparedRows]:
    """The batches of a segment, stopping at a torn or corrupt tail."""
    data = segment.read_bytes()
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if length > _MAX_RECORD or end > len(data) or zlib.crc32(data[start:end]) != crc:
            log.warning(
                "%s: ignoring a torn record at byte %d (a crash interrupted its append)", segment, offset
            )
            return
        yield _decode(data[start:end])
        offset = end


class EventSpool:
    """Append-only, fsync'd segment files in ``directory``. Not thread-safe: the caller locks."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name.split("-")[1].split(".")[0]) for p in self.directory.glob("segment-*")]
        self._next = max(numbers, default=0) + 1
        self._file: object | None = None
        self._current: Path | None = None

    def recover(self) -> None:
        """Close the segments a crashed run left open: their fsync'd records are acknowledged events."""
        left = sorted(self.directory.glob(f"segment-*{_OPEN}"))
        for path in left:
            path.rename(path.with_suffix(_CLOSED))
        if left:
            _fsync_dir(self.directory)

    def segments(self) -> list[Path]:
        """Closed segment files on disk, oldest first."""
        return closed_segments(self.directory)

    def append(self, batch: Sequence[Event] | PreparedRows) -> None:
        """Write one batch and fsync it; afterwards it survives a crash."""
        payload = _encode(batch if isinstance(batch, PreparedRows) else prepare_rows(batch))
        if self._file is None:
            self._current = self.directory / f"segment-{self._next:012d}{_OPEN}"
            self._next += 1
            self._file = open(self._current, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
            _fsync_dir(self.directory)
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self._file.write(record)  # type: ignore[attr-defined]
        os.fsync(self._file.fileno())  # type: ignore[attr-defined]

    def rotate(self) -> Path | None:
        """Close the current segment, hand it to the committer, return it (None if nothing was appended)."""
        if self._file is None or self._current is None:
            return None
        self._file.close()  # type: ignore[attr-defined]
        closed = self._current.with_suffix(_CLOSED)
        self._current.rename(closed)
        _fsync_dir(self.directory)
        self._file, self._current = None, None
        return closed

    @staticmethod
    def read(segment: Path) -> Iterator[PreparedRows]:
        """The batches of a segment, stopping at a torn or corrupt tail."""
        return read_segment(segment)

    def remove(self, segment: Path) -> None:
        remove_segment(segment)

    def close(self) -> None:
        self.rotate()


@dataclass(frozen=True, slots=True)
class SpoolResult:
    """Events accepted into the spool (durable, not yet committed to the rollup)."""

    spooled: int


def commit_segments(writer: RollupWriter, segments: Sequence[Path], *, max_rows: int = 0) -> WriteResult:
    """Commit ``segments`` (the first ones holding ``max_rows``, if > 0) in one transaction, then delete them.

    A segment that is gone was committed and deleted by another process.
    """
    rows, taken = PreparedRows(), []
    for segment in segments:
        if taken and 0 < max_rows <= len(rows):
            break
        try:
            for batch in read_segment(segment):
                rows.extend(batch)
        except FileNotFoundError:
            continue
        taken.append(segment)
    # segments left for the next transaction: fold these rows with theirs (the writer's deferred fold)
    defer = len(taken) < len(segments)
    result = writer.write_rows(rows, defer_fold=defer) if len(rows) else WriteResult(0, 0)
    for segment in taken:
        remove_segment(segment)
    return result


class SpooledWriter:
    """Acknowledge after the spool fsync; a committer process commits to ``writer``'s rollup.

    ``write`` validates the batch first (a bad event refuses the batch before
    anything is stored). ``flush`` waits until everything spooled is committed;
    ``close`` does that, stops the committer and closes the writer.
    """

    def __init__(
        self,
        writer: RollupWriter,
        spool_dir: str | os.PathLike[str],
        *,
        batch_size: int = 20_000,
        flush_interval_s: float = 0.25,
    ) -> None:
        if batch_size < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size must be >= 1 and flush_interval_s > 0")
        self.writer = writer
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.spool = EventSpool(spool_dir)
        self.spool.recover()
        self.replayed = self._replay()
        self._lock = threading.Lock()
        self._segment_events = 0
        self._closed = False
        self._stop = threading.Event()
        self._committer = _start_committer(writer, self.spool.directory, batch_size, flush_interval_s)
        self._thread = threading.Thread(
            target=self._rotate_periodically, name="nexus-spool-rotate", daemon=True
        )
        self._thread.start()

    def _replay(self) -> WriteResult:
        """Commit every closed segment here, one by one (at start, and what a committer left behind)."""
        inserted = duplicates = 0
        for segment in self.spool.segments():
            result = commit_segments(self.writer, [segment])
            inserted, duplicates = inserted + result.inserted, duplicates + result.duplicates
        if inserted or duplicates:
            log.info("replayed the spool: %d events committed, %d already present", inserted, duplicates)
        return WriteResult(inserted, duplicates)

    def write(self, events: Sequence[Event]) -> SpoolResult:
        """Spool ``events`` durably and return; they reach the rollup within ``flush_interval_s`` or so."""
        return self.write_rows(prepare_rows(events))

    def write_rows(self, rows: PreparedRows) -> SpoolResult:
        """Spool rows made by :func:`~exporters.rollup.rows.prepare_rows` durably and return."""
        size = len(rows)
        if not size:
            return SpoolResult(0)
        with self._lock:
            if self._closed:
                raise RuntimeError("the spooled writer is closed")
            self.spool.append(rows)
            self._segment_events += size
            if self._segment_events >= self.batch_size:
                self._rotate()
        return SpoolResult(size)

    def flush(self, *, timeout_s: float = 60.0) -> None:
        """Wait until what is spooled now is committed (commits it here if the committer is gone).

        ``TimeoutError`` if the committer has not committed it within ``timeout_s``
        (e.g. the rollup refuses writes; the spool keeps the events).
        """
        with self._lock:
            self._rotate()
            pending = self.spool.segments()
        deadline = time.monotonic() + timeout_s
        while pending and self._committer.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} spool segments not committed after {timeout_s:.0f} s")
            time.sleep(0.005)
            pending = [p for p in pending if p.exists()]
        if pending:
            self._replay()

    @property
    def committer_pid(self) -> int:
        """Process id of the current spool committer (it changes when a dead one is replaced)."""
        return self._committer.pid

    def ready(self) -> bool:
        return not self._closed and self._committer.poll() is None and self.writer.ready()

    def close(self) -> None:
        """Commit everything spooled, stop the committer, close the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._rotate()
        self._stop.set()
        self._thread.join()
        try:
            with contextlib.suppress(OSError):  # a committer that died already
                self._committer.communicate(b"stop\n", timeout=_DRAIN_TIMEOUT_S)
            if self._committer.returncode != 0:
                log.error(
                    "the spool committer exited with %s; committing the rest here", self._committer.returncode
                )
            self._replay()
        finally:
            if self._committer.poll() is None:
                self._committer.kill()
                self._committer.wait()
            self.spool.close()
            self.writer.close()

    def _rotate(self) -> None:
        """With ``_lock`` held: close the current segment so the committer takes it."""
        if self.spool.rotate() is not None:
            self._segment_events = 0

    def _rotate_periodically(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            with self._lock:
                if self._closed:
                    continue
                self._rotate()
                if self._committer.poll() is not None:  # acknowledged events must not wait for a restart
                    log.warning(
                        "the spool committer exited with %s; starting a new one", self._committer.returncode
                    )
                    self._committer = _start_committer(
                        self.writer, self.spool.directory, self.batch_size, self.flush_interval_s
                    )


def _start_committer(
    writer: RollupWriter, spool_dir: Path, batch_size: int, interval_s: float
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # the committer imports exactly the code this process runs
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    retention = "none" if writer.retention_days is None else str(writer.retention_days)
    command = [sys.executable, "-m", "exporters.rollup.committer", "--rollup", writer.path]
    command += ["--spool", str(spool_dir), "--batch-size", str(batch_size), "--poll-s", str(interval_s)]
    command += ["--retention-days", retention, "--synchronous", writer.synchronous]
    command += ["--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())]
    return subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
