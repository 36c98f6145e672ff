"""What a finished model call hands to the recorder.

Tracking code (decorators, stream wrappers, client integrations) fills one
:class:`CallRecord` per call and passes it to :meth:`Recorder.record_call`, which
prices it, folds labels, updates metrics and emits the event, exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import semconv as sc
from .usage import Usage

__all__ = ["CallRecord", "call_event_values"]


@dataclass(slots=True)
class CallRecord:
    # call._begin_call builds one positionally, in this field order.
    model: str
    provider: str
    operation: str = "chat"
    start_time: float = 0.0  # Unix seconds when the call started
    duration_s: float = 0.0
    usage: Usage | None = None
    response_model: str | None = None
    server_address: str | None = None
    request_id: str = ""
    user_id: str | None = None
    session_id: str | None = None
    team: str | None = None
    project: str | None = None
    feature: str | None = None
    error_type: str | None = None  # set when the call failed
    streamed: bool = False
    ttft_s: float | None = None  # streams only
    routed: bool = False
    baseline_model: str | None = None
    router_confidence: float | None = None


def call_event_values(
    rec: CallRecord, cost: tuple[float, ...] | None, baseline: tuple[float, ...] | None, priced: bool
) -> tuple[Any, ...]:
    """The model-call event of ``rec`` as a flat tuple: :class:`ModelCallEvent`'s fields in order.

    This is what waits in the event queue. A tuple of strings, numbers and None
    holds no reference the garbage collector must follow, so the collector stops
    tracking it at its first pass instead of re-scanning it (and the call record,
    usage and cost objects it would otherwise keep alive) until export. The OTLP
    exporter encodes it as it is; other exporters get ``ModelCallEvent(*values)``.
    ``cost``/``baseline`` end with the total (see ``Recorder._cost``).
    """
    usage = rec.usage
    routed_cost = (baseline if baseline is not None else cost) if rec.routed and cost is not None else None
    if usage is None:
        tokens: tuple[int, ...] = (0, 0, 0, 0, 0)
    else:
        tokens = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
            usage.reasoning_tokens,
        )
    return (
        rec.start_time,
        rec.user_id,
        rec.session_id,
        rec.team,
        rec.project,
        rec.feature,
        rec.request_id,
        rec.model,
        rec.response_model,
        rec.provider,
        rec.operation,
        rec.server_address,
        *tokens,
        cost[5] if cost is not None else None,
        routed_cost[5] if routed_cost is not None else None,
        priced,
        rec.duration_s,
        rec.ttft_s,
        rec.streamed,
        sc.OUTCOME_ERROR if rec.error_type is not None else sc.OUTCOME_SUCCESS,
        rec.error_type,
        rec.routed,
        rec.baseline_model,
        rec.router_confidence,
    )
