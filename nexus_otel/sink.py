"""A non-blocking, bounded, batched event pipeline.

The caller's thread only appends to a deque; a daemon thread hands batches to
the exporters (OTLP logs, the embedded SQLite rollup, the OpenTelemetry logs
API). A full queue drops the event and counts it instead of blocking the
call that produced it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .events import Event, ModelCallEvent

__all__ = ["EventExporter", "EventSink", "materialize"]

_log = logging.getLogger(__name__)


class Queued(Protocol):
    def materialize(self) -> Event: ...


#: What waits in the queue: an event, or a model call's event as the flat tuple
#: of :func:`nexus_otel.record.call_event_values` (``ModelCallEvent(*values)``).
QueuedItem = Queued | tuple[Any, ...]


class EventExporter(Protocol):
    """``export`` gets event objects. An exporter that also defines
    ``export_queued(items)`` gets the queued items as they are instead (events and
    model-call value tuples), so it can skip building one object per call."""

    def export(self, batch: Sequence[Event]) -> None: ...

    def shutdown(self) -> None: ...


def materialize(item: QueuedItem) -> Event:
    """The event object of one queued item."""
    if type(item) is tuple:
        return ModelCallEvent(*item)
    return item.materialize()  # type: ignore[union-attr]


class EventSink:
    """Queue events; export them in batches of ``batch_size`` or every ``flush_interval_s``."""

    def __init__(
        self,
        exporters: Sequence[EventExporter] = (),
        *,
        max_queue: int = 10_000,
        batch_size: int = 50,
        flush_interval_s: float = 5.0,
        on_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be >= 1")
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be > 0")
        self.exporters = list(exporters)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._on_drop = on_drop
        self._queue: deque[QueuedItem] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._producers: list[Callable[[], None]] = []
        os.register_at_fork(after_in_child=self._after_fork)

    def add_producer(self, produce: Callable[[], None]) -> None:
        """Run ``produce`` (which may :meth:`submit` events) on the worker before each export
        and in :meth:`flush` before waiting: work handed over without an event yet (the
        recorder's deferred calls) becomes events at those points."""
        self._producers.append(produce)

    def wake(self) -> None:
        """Have the worker run its producers and export now; starts it if needed."""
        if self._thread is None:
            self._start()
        self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, event: QueuedItem) -> None:
        """Queue one event without blocking; drops (and counts) when full or closed.

        Anything with ``materialize() -> Event`` may be queued, or a model call's
        value tuple: building the event object then happens on the export thread
        (if at all), not the caller's.
        """
        if not self.exporters:
            return
        if self._closed:
            self._drop("shutdown", 1)
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self._drop("queue_full", 1)
            return
        queue.append(event)
        if self._thread is None:
            self._start()
        if len(queue) >= self.batch_size:
            self._wake.set()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export everything queued so far; True when done within the timeout."""
        self._produce()
        if self._thread is None:
            self._export_pending()
            return True
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._idle:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
                self._wake.set()
        return True

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush, stop the worker and shut the exporters down. Idempotent."""
        if self._closed:
            return
        self.flush(timeout_s)
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._produce()
        self._export_pending()
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception:
                _log.exception("event exporter %r failed to shut down", exporter)

    def _start(self) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nexus-otel-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._produce()
            self._export_pending()

    def _produce(self) -> None:
        for produce in self._producers:
            try:
                produce()
            except Exception:
                _log.exception("nexus-otel event producer %r failed", produce)

    def _export_pending(self) -> None:
        queue = self._queue
        while queue:
            pending: list[QueuedItem] = []
            with self._idle:
                while queue and len(pending) < self.batch_size:
                    pending.append(queue.popleft())
                self._in_flight += len(pending)
            try:
                self._export(pending)
            finally:
                with self._idle:
                    self._in_flight -= len(pending)
                    self._idle.notify_all()

    def _materialize(self, pending: list[QueuedItem]) -> list[Event]:
        events = []
        for item in pending:
            try:
                events.append(materialize(item))
            except Exception:
                _log.exception("nexus-otel could not build an event; it is dropped")
                self._drop("invalid", 1)
        return events

    def _export(self, pending: list[QueuedItem]) -> None:
        events: list[Event] | None = None  # built once, only for exporters that need objects
        for exporter in self.exporters:
            export_queued = getattr(exporter, "export_queued", None)
            if export_queued is not None:
                batch: Sequence[Any] = pending
            else:
                if events is None:
                    events = self._materialize(pending)
                batch = events
            try:
                if export_queued is not None:
                    export_queued(batch)
                else:
                    exporter.export(batch)
            except Exception:
                _log.exception("event exporter %r failed; %d events dropped", exporter, len(batch))
                self._drop("export_failed", len(batch))

    def _drop(self, reason: str, n: int) -> None:
        if self._on_drop is not None:
            self._on_drop(reason, n)

    def _after_fork(self) -> None:
        # The worker thread does not survive fork(); the child starts its own. The
        # parent still owns the events queued before the fork: the child must not
        # export them a second time.
        self._queue.clear()
        self._thread = None
        self._thread_lock = threading.Lock()
        self._idle = threading.Condition()
        self._in_flight = 0
