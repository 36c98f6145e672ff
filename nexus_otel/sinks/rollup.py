"""Embedded mode: write events straight into a SQLite rollup, without a collector.

``nexus_otel.configure(rollup="path.db")`` adds a :class:`RollupEventSink` to
the event pipeline; its background thread calls :meth:`RollupEventSink.export`
with batches. sqlite-utils belongs to the ``collector`` extra, so the rollup
package is imported when the sink opens the file, never by ``import nexus_otel``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..events import Event

if TYPE_CHECKING:
    from exporters.rollup import RollupWriter

__all__ = ["RollupEventSink"]


class RollupEventSink:
    """Commit each exported batch to the rollup at ``path`` (created and migrated on first use).

    The file is opened lazily on the first batch, so configuring the sink costs
    nothing until events flow, and a missing ``collector`` extra surfaces as an
    ``ImportError`` naming it (the event pipeline logs it and counts the drop).
    """

    def __init__(self, path: str | os.PathLike[str], *, retention_days: float | None = 90.0) -> None:
        self.path = os.fspath(path)
        self.retention_days = retention_days
        self._writer: RollupWriter | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> RollupWriter:
        with self._lock:
            if self._closed:
                raise RuntimeError("the rollup sink is shut down")
            if self._writer is None:
                try:
                    from exporters.rollup import RollupWriter
                except ImportError as exc:
                    raise ImportError(
                        "the embedded rollup needs the collector extra: pip install 'nexus-otel[collector]'"
                    ) from exc
                self._writer = RollupWriter(self.path, retention_days=self.retention_days)
            return self._writer

    def export(self, batch: Sequence[Event]) -> None:
        """Commit ``batch`` in one transaction; re-exported request ids are not counted twice."""
        if batch:
            self._open().write(batch)

    def shutdown(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
