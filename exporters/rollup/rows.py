"""Turn event objects into rows of the raw tables, in the column order of the INSERTs.

Validation happens here, before any transaction starts, so a bad event refuses
its whole batch without touching the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nexus_otel.events import (
    Event,
    FeatureUseEvent,
    FeedbackEvent,
    ModelCallEvent,
    RevenueEvent,
    SessionEvent,
)

__all__ = ["PreparedRows", "columns_of", "insert_sql", "prepare_rows"]


@dataclass(frozen=True, slots=True)
class _TableSpec:
    table: str
    columns: tuple[str, ...]
    getter: Callable[[Event], tuple[Any, ...]]


def _spec(table: str, cls: type[Event]) -> _TableSpec:
    names = tuple(f.name for f in dataclasses.fields(cls))
    columns = tuple("ts" if n == "timestamp" else n for n in names)
    if cls is not ModelCallEvent:
        columns = (*columns, "event_key")
    return _TableSpec(table, columns, operator.attrgetter(*names))


_SPECS: dict[type[Event], _TableSpec] = {
    ModelCallEvent: _spec("model_calls", ModelCallEvent),
    FeatureUseEvent: _spec("feature_uses", FeatureUseEvent),
    FeedbackEvent: _spec("feedback", FeedbackEvent),
    RevenueEvent: _spec("revenue", RevenueEvent),
    SessionEvent: _spec("sessions", SessionEvent),
}
TABLE_ORDER: tuple[str, ...] = tuple(spec.table for spec in _SPECS.values())
_REQUEST_ID = _SPECS[ModelCallEvent].columns.index("request_id")
_NOT_NULL_STR = tuple(
    _SPECS[ModelCallEvent].columns.index(c) for c in ("model", "provider", "operation", "outcome")
)


def columns_of(table: str) -> tuple[str, ...]:
    """The columns of ``table``'s rows, in the order :func:`prepare_rows` gives them."""
    return next(s.columns for s in _SPECS.values() if s.table == table)


def insert_sql(table: str) -> str:
    """``INSERT OR IGNORE`` for ``table``: a duplicate request id / event key is skipped."""
    spec = next(s for s in _SPECS.values() if s.table == table)
    placeholders = ", ".join("?" * len(spec.columns))
    return f"INSERT OR IGNORE INTO {table} ({', '.join(spec.columns)}) VALUES ({placeholders})"


@dataclass(slots=True)
class PreparedRows:
    """Rows per raw table, ready for ``executemany``."""

    by_table: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.by_table.values())

    def extend(self, other: PreparedRows) -> None:
        for table, rows in other.by_table.items():
            self.by_table.setdefault(table, []).extend(rows)

    def add_calls(self, rows: list[tuple[Any, ...]]) -> None:
        """Add ``model_calls`` rows already checked as ``prepare_rows`` checks them
        (``exporters.otlp.call_rows`` reads only such rows)."""
        if rows:
            self.by_table.setdefault("model_calls", []).extend(rows)


def _content_key(kind: str, values: tuple[Any, ...]) -> str:
    return hashlib.sha256(repr((kind, values)).encode()).hexdigest()


def prepare_rows(events: Sequence[Event]) -> PreparedRows:
    """Rows for ``events``; ``ValueError`` names the first event that cannot be stored."""
    prepared = PreparedRows()
    by_table = prepared.by_table
    specs = _SPECS
    model_call_getter = specs[ModelCallEvent].getter
    model_call_rows: list[tuple[Any, ...]] | None = None
    i_model, i_provider, i_operation, i_outcome = _NOT_NULL_STR
    i_request_id = _REQUEST_ID
    for index, event in enumerate(events):
        cls = type(event)
        if cls is ModelCallEvent:  # the hot path: the same checks as below, unrolled
            values = model_call_getter(event)
            ts = values[0]
            if not isinstance(ts, (int, float)) or isinstance(ts, bool):
                raise ValueError(f"event {index}: timestamp must be Unix seconds, got {ts!r}")
            model, provider, operation, outcome = (
                values[i_model],
                values[i_provider],
                values[i_operation],
                values[i_outcome],
            )
            if not (
                isinstance(model, str)
                and model
                and isinstance(provider, str)
                and provider
                and isinstance(operation, str)
                and operation
                and isinstance(outcome, str)
                and outcome
            ):
                raise ValueError(f"event {index}: model, provider, operation and outcome must be non-empty")
            if not values[i_request_id]:
                row = list(values)
                row[i_request_id] = "sha256:" + _content_key("model_calls", values)
                values = tuple(row)
            if model_call_rows is None:
                model_call_rows = by_table.setdefault("model_calls", [])
            model_call_rows.append(values)
            continue
        spec = specs.get(cls)
        if spec is None:
            raise ValueError(f"event {index}: {cls.__name__} is not a nexus_otel event type")
        values = spec.getter(event)
        if not isinstance(values[0], (int, float)) or isinstance(values[0], bool):
            raise ValueError(f"event {index}: timestamp must be Unix seconds, got {values[0]!r}")
        values = (*values, _content_key(spec.table, values))
        by_table.setdefault(spec.table, []).append(values)
    return prepared
