"""What a finished model call hands to the recorder.

Tracking code (decorators, stream wrappers, client integrations) fills one
:class:`CallRecord` per call and passes it to :meth:`Recorder.record_call`, which
prices it, folds labels, updates metrics and emits the event, exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import semconv as sc
from .events import ModelCallEvent
from .usage import Usage

__all__ = ["CallRecord", "PendingCallEvent"]


@dataclass(slots=True)
class CallRecord:
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


class PendingCallEvent:
    """A finished call waiting in the event queue; the event object is built on the export thread."""

    __slots__ = ("baseline", "cost", "priced", "rec")

    def __init__(self, rec: CallRecord, cost: Any, baseline: Any, priced: bool) -> None:
        self.rec, self.cost, self.baseline, self.priced = rec, cost, baseline, priced

    def materialize(self) -> ModelCallEvent:
        rec, usage, cost = self.rec, self.rec.usage, self.cost
        routed_cost = (self.baseline or cost) if rec.routed and cost is not None else None
        return ModelCallEvent(
            timestamp=rec.start_time,
            request_id=rec.request_id,
            user_id=rec.user_id,
            session_id=rec.session_id,
            team=rec.team,
            project=rec.project,
            feature=rec.feature,
            model=rec.model,
            response_model=rec.response_model,
            provider=rec.provider,
            operation=rec.operation,
            server_address=rec.server_address,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            cache_read_tokens=usage.cache_read_tokens if usage else 0,
            cache_write_tokens=usage.cache_write_tokens if usage else 0,
            reasoning_tokens=usage.reasoning_tokens if usage else 0,
            cost_usd=float(cost.total) if cost is not None else None,
            baseline_cost_usd=float(routed_cost.total) if routed_cost is not None else None,
            priced=self.priced,
            latency_s=rec.duration_s,
            ttft_s=rec.ttft_s,
            streamed=rec.streamed,
            outcome=sc.OUTCOME_ERROR if rec.error_type is not None else sc.OUTCOME_SUCCESS,
            error_type=rec.error_type,
            routed=rec.routed,
            routed_from=rec.baseline_model,
            router_confidence=rec.router_confidence,
        )
