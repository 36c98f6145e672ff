"""The event schema: one record per tracked call, feature use, feedback, revenue, session.

Events travel as OpenTelemetry log records whose ``event_name`` (and the
``event.name`` attribute, for older receivers) is one of
:data:`nexus_otel.semconv.EVENT_NAMES` and whose attributes are the fields below
under the keys of :data:`FIELD_KEYS`. The collector rebuilds them with
:func:`from_attributes`; the embedded rollup receives the objects directly.
Unlike metrics, events may carry user and session ids. Prompt content is never
part of an event.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from . import semconv

__all__ = [
    "Event",
    "FeatureUseEvent",
    "FeedbackEvent",
    "ModelCallEvent",
    "RevenueEvent",
    "SessionEvent",
    "from_attributes",
]

#: Attribute key for each dataclass field, shared by every event kind.
FIELD_KEYS: dict[str, str] = {
    "timestamp": "nexus.timestamp",
    "request_id": "nexus.request.id",
    "user_id": "nexus.user.id",
    "session_id": "nexus.session.id",
    "team": semconv.TEAM,
    "project": semconv.PROJECT,
    "feature": semconv.FEATURE,
    "model": semconv.REQUEST_MODEL,
    "response_model": semconv.RESPONSE_MODEL,
    "provider": semconv.PROVIDER,
    "operation": semconv.OPERATION,
    "server_address": semconv.SERVER_ADDRESS,
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
    "cost_usd": "nexus.cost.usd",
    "baseline_cost_usd": "nexus.router.baseline_cost.usd",
    "priced": "nexus.cost.priced",
    "latency_s": "nexus.latency.seconds",
    "ttft_s": "nexus.ttft.seconds",
    "streamed": "gen_ai.request.stream",
    "outcome": semconv.OUTCOME,
    "error_type": semconv.ERROR_TYPE,
    "routed": semconv.ROUTED,
    "routed_from": semconv.BASELINE_MODEL,
    "router_confidence": "nexus.router.confidence",
    "score": "nexus.feedback.score",
    "comment_length": "nexus.feedback.comment_length",
    "amount_usd": "nexus.revenue.usd",
    "plan": semconv.PLAN,
    "state": semconv.SESSION_STATE,
    "duration_s": "nexus.session.duration.seconds",
    "count": "nexus.feature.count",
}


@dataclass(slots=True)
class Event:
    """Common fields. ``timestamp`` is Unix seconds (float)."""

    name: ClassVar[str] = ""
    timestamp: float
    user_id: str | None = None
    session_id: str | None = None
    team: str | None = None
    project: str | None = None
    feature: str | None = None

    def to_attributes(self) -> dict[str, Any]:
        """Flat OTLP-compatible attributes.

        ``None`` fields and fields equal to their default (zero token counts,
        ``routed=False`` ...) are left out: :func:`from_attributes` restores them,
        and every attribute costs encoding time and bytes on the wire.
        """
        out: dict[str, Any] = {"event.name": self.name}
        for name, key, default in _fields_of(type(self)):
            value = getattr(self, name)
            if value is not None and (value != default or name == "timestamp"):
                out[key] = value
        return out

    def materialize(self) -> Event:
        """Events queue as themselves; see :class:`nexus_otel.recorder.PendingCallEvent`."""
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["event"] = self.name
        return d


@dataclass(slots=True)
class ModelCallEvent(Event):
    name: ClassVar[str] = semconv.EVENT_MODEL_CALL
    request_id: str = ""
    model: str = ""
    response_model: str | None = None
    provider: str = ""
    operation: str = "chat"
    server_address: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    baseline_cost_usd: float | None = None
    priced: bool = True
    latency_s: float = 0.0
    ttft_s: float | None = None
    streamed: bool = False
    outcome: str = semconv.OUTCOME_SUCCESS
    error_type: str | None = None
    routed: bool = False
    routed_from: str | None = None
    router_confidence: float | None = None


@dataclass(slots=True)
class FeatureUseEvent(Event):
    name: ClassVar[str] = semconv.EVENT_FEATURE_USE
    count: int = 1


@dataclass(slots=True)
class FeedbackEvent(Event):
    name: ClassVar[str] = semconv.EVENT_FEEDBACK
    request_id: str = ""
    score: float = 0.0
    model: str | None = None
    provider: str | None = None
    comment_length: int | None = None


@dataclass(slots=True)
class RevenueEvent(Event):
    name: ClassVar[str] = semconv.EVENT_REVENUE
    amount_usd: float = 0.0
    plan: str | None = None


@dataclass(slots=True)
class SessionEvent(Event):
    name: ClassVar[str] = semconv.EVENT_SESSION
    state: str = "started"
    duration_s: float | None = None


_FIELD_CACHE: dict[type, tuple[tuple[str, str, Any], ...]] = {}


def _fields_of(cls: type) -> tuple[tuple[str, str, Any], ...]:
    cached = _FIELD_CACHE.get(cls)
    if cached is None:
        cached = _FIELD_CACHE[cls] = tuple(
            (f.name, FIELD_KEYS[f.name], None if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(cls)
        )
    return cached


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls for cls in (ModelCallEvent, FeatureUseEvent, FeedbackEvent, RevenueEvent, SessionEvent)
}


def from_attributes(event_name: str, attributes: dict[str, Any]) -> Event:
    """Rebuild an event from log-record attributes.

    Raises ``ValueError`` for an unknown event name, a missing timestamp or a
    field whose value has the wrong type; unknown attribute keys are ignored so
    newer senders stay readable.
    """
    readers = _READERS.get(event_name)
    if readers is None:
        cls = EVENT_TYPES.get(event_name)
        if cls is None:
            raise ValueError(f"unknown event name {event_name!r}; expected one of {sorted(EVENT_TYPES)}")
        readers = _READERS[event_name] = _readers(cls)
    kwargs: dict[str, Any] = {}
    for key, value in attributes.items():
        reader = readers.get(key)
        if reader is not None:
            fname, coerce = reader
            kwargs[fname] = coerce(fname, value)
    if "timestamp" not in kwargs:
        raise ValueError(f"{event_name}: missing attribute {FIELD_KEYS['timestamp']!r}")
    return EVENT_TYPES[event_name](**kwargs)


_INT_FIELDS = {"input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"}


def _wrong(fname: str, value: Any) -> ValueError:
    return ValueError(f"attribute {FIELD_KEYS[fname]!r} has a value of the wrong type: {value!r}")


def _as_bool(fname: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _wrong(fname, value)


def _as_int(fname: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():  # OTLP/JSON encodes int64 as strings
        return int(value)
    raise _wrong(fname, value)


def _as_float(fname: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _wrong(fname, value)


def _as_str(fname: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _wrong(fname, value)


def _readers(cls: type[Event]) -> dict[str, tuple[str, Any]]:
    """Attribute key -> (field name, coercer) for ``cls``, decided once from the annotations."""
    out = {}
    for f in dataclasses.fields(cls):
        ann = str(f.type)
        if "bool" in ann:
            coerce = _as_bool
        elif f.name in _INT_FIELDS or ann.startswith("int"):
            coerce = _as_int
        elif "float" in ann:
            coerce = _as_float
        else:
            coerce = _as_str
        out[FIELD_KEYS[f.name]] = (f.name, coerce)
    return out


#: event name -> its readers, built on first use
_READERS: dict[str, dict[str, tuple[str, Any]]] = {}
