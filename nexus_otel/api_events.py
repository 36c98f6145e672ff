"""Events through the OpenTelemetry logs API, for apps that run their own SDK.

Each event becomes one log record with ``event_name`` set and the event's
fields as attributes; whatever LoggerProvider the app installed exports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry._logs import LogRecord, get_logger

from .events import Event
from .semconv import INSTRUMENTATION_SCOPE
from .version import __version__

__all__ = ["ApiEventExporter", "to_log_record"]


def to_log_record(event: Event) -> LogRecord:
    ts = int(event.timestamp * 1e9)
    return LogRecord(
        timestamp=ts, observed_timestamp=ts, event_name=event.name, attributes=event.to_attributes()
    )


class ApiEventExporter:
    """Emits events on the global (or given) logger provider."""

    def __init__(self, logger_provider: object | None = None) -> None:
        self._logger = get_logger(INSTRUMENTATION_SCOPE, __version__, logger_provider=logger_provider)

    def export(self, batch: Sequence[Event]) -> None:
        emit = self._logger.emit
        for event in batch:
            emit(to_log_record(event))

    def shutdown(self) -> None:
        return None
