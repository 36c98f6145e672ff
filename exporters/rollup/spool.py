"""A durable spool: acknowledge event batches once fsync'd to disk, commit them to the rollup later.

Layout: a directory of segment files ``segment-<n>.spool``. A segment is a
sequence of records ``<length:u32 LE><crc32:u32 LE><payload>``, the payload
being one event batch as JSON. ``append`` returns after ``fsync``, so an
acknowledged batch survives ``kill -9`` and power loss. A torn tail record (a
crash mid-append, hence never acknowledged) fails its length or CRC check and
is ignored on replay.

:class:`SpooledWriter` appends to the current segment, rotates to a new one
every ``flush_interval_s`` (or ``batch_size`` events), commits the closed
segment's events to the :class:`~exporters.rollup.writer.RollupWriter` and
then deletes the segment. On start it replays every segment left behind and
deletes it once committed. A crash between commit and delete replays events
the rollup already holds, which the writer's idempotency on request id (and
content key) turns into no-ops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nexus_otel.events import EVENT_TYPES, Event

from .rows import prepare_rows
from .writer import RollupWriter, WriteResult

__all__ = ["EventSpool", "SpoolResult", "SpooledWriter"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_MAX_RECORD = 1 << 30
_FIELD_NAMES: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in EVENT_TYPES.items()
}


def _encode(events: Sequence[Event]) -> bytes:
    batch = [[e.name, [getattr(e, f) for f in _FIELD_NAMES[e.name]]] for e in events]
    return json.dumps(batch, separators=(",", ":")).encode()


def _decode(payload: bytes) -> list[Event]:
    events = []
    for name, values in json.loads(payload):
        fields = _FIELD_NAMES[name]
        events.append(EVENT_TYPES[name](**dict(zip(fields, values, strict=True))))
    return events


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventSpool:
    """Append-only, fsync'd segment files in ``directory``. Not thread-safe: the caller locks."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = self.segments()
        self._next = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        self._file: object | None = None
        self._current: Path | None = None
        self._current_size = 0

    def segments(self) -> list[Path]:
        """Segment files on disk, oldest first."""
        return sorted(self.directory.glob("segment-*.spool"))

    def append(self, events: Sequence[Event]) -> None:
        """Write one batch and fsync it; afterwards it survives a crash."""
        payload = _encode(events)
        if self._file is None:
            self._current = self.directory / f"segment-{self._next:012d}.spool"
            self._next += 1
            self._file = open(self._current, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
            _fsync_dir(self.directory)
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self._file.write(record)  # type: ignore[attr-defined]
        os.fsync(self._file.fileno())  # type: ignore[attr-defined]
        self._current_size += len(record)

    def rotate(self) -> Path | None:
        """Close the current segment and return it (None if nothing was appended since the last rotate)."""
        if self._file is None:
            return None
        self._file.close()  # type: ignore[attr-defined]
        closed, self._file, self._current, self._current_size = self._current, None, None, 0
        return closed

    @staticmethod
    def read(segment: Path) -> Iterator[list[Event]]:
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

    def remove(self, segment: Path) -> None:
        segment.unlink(missing_ok=True)
        _fsync_dir(self.directory)

    def close(self) -> None:
        self.rotate()


@dataclass(frozen=True, slots=True)
class SpoolResult:
    """Events accepted into the spool (durable, not yet committed to the rollup)."""

    spooled: int


class SpooledWriter:
    """Acknowledge after the spool fsync; commit to ``writer`` in the background.

    ``write`` validates the batch first (a bad event refuses the batch before
    anything is stored). ``close`` commits everything spooled and closes the writer.
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
        self.replayed = self._replay()
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        # segments whose events failed to commit; their events are back in _pending
        self._retry_segments: list[Path] = []
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()  # one commit of spooled events at a time
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="nexus-rollup-spool", daemon=True)
        self._thread.start()

    def _replay(self) -> WriteResult:
        """Commit every segment a previous run left behind, then delete it."""
        inserted = duplicates = 0
        for segment in self.spool.segments():
            events = [event for batch in EventSpool.read(segment) for event in batch]
            if events:
                result = self.writer.write(events)
                inserted, duplicates = inserted + result.inserted, duplicates + result.duplicates
            self.spool.remove(segment)
        if inserted or duplicates:
            log.info("replayed the spool: %d events committed, %d already present", inserted, duplicates)
        return WriteResult(inserted, duplicates)

    def write(self, events: Sequence[Event]) -> SpoolResult:
        """Spool ``events`` durably and return; they reach the rollup within ``flush_interval_s``."""
        prepare_rows(events)
        if not events:
            return SpoolResult(0)
        with self._lock:
            if self._closed:
                raise RuntimeError("the spooled writer is closed")
            self.spool.append(events)
            self._pending.extend(events)
            if len(self._pending) >= self.batch_size:
                self._wake.set()
        return SpoolResult(len(events))

    def flush(self) -> None:
        """Commit what is spooled now (raises if the rollup refuses it; the spool keeps it)."""
        with self._flush_lock:
            self._commit_pending()

    def ready(self) -> bool:
        return not self._closed and self.writer.ready()

    def close(self) -> None:
        """Commit everything spooled, stop the background thread, close the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            self.spool.close()
            self.writer.close()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("committing spooled events failed; they stay spooled and are retried")

    def _commit_pending(self) -> None:
        with self._lock:
            segment = self.spool.rotate()
            events, self._pending = self._pending, []
        if segment is None and not events:
            return
        try:
            self.writer.write(events)
        except BaseException:
            # The segment stays on disk; put the events back so the next flush retries them first.
            with self._lock:
                self._pending[:0] = events
                if segment is not None:
                    self._retry_segments.append(segment)
            raise
        if segment is not None:
            self.spool.remove(segment)
        for older in self._drain_retried():
            self.spool.remove(older)

    def _drain_retried(self) -> list[Path]:
        with self._lock:
            segments, self._retry_segments = self._retry_segments, []
        return segments
