"""What a finished model call hands to the recorder.

Tracking code (decorators, stream wrappers, client integrations) fills one
:class:`CallRecord` per call and passes it to :meth:`Recorder.record_call`, which
prices it, folds labels, updates metrics and emits the event, exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .usage import Usage

__all__ = ["CallRecord"]


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
