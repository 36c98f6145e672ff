"""One model call in flight: its handle, its id, and how it ends.

:class:`ModelCall` collects what a call reports (usage, response, stream
chunks) and hands exactly one :class:`~nexus_otel.record.CallRecord` to the
recorder when it finishes. :func:`start_call` begins one; the decorator in
:mod:`nexus_otel.tracking` and the client integrations both use it.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import uuid
from typing import Any

from . import clock
from .attribution import _current as _attribution
from .extract import UsageAccumulator, response_model_from, usage_from_response
from .record import CallRecord
from .recorder import Recorder, get_recorder
from .streams import AsyncStreamWrapper, SyncStreamWrapper, is_async_stream, is_sync_stream
from .usage import Usage

__all__ = [
    "ModelCall",
    "current_call",
    "error_type_of",
    "new_request_id",
    "settle",
    "start_call",
]

_log = logging.getLogger(__name__)
_current_call: contextvars.ContextVar[ModelCall | None] = contextvars.ContextVar(
    "nexus_otel_call", default=None
)


_id_prefix = uuid.uuid4().hex[:16]
_id_counter = itertools.count()


def _new_id_space() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = uuid.uuid4().hex[:16], itertools.count()


os.register_at_fork(after_in_child=_new_id_space)


def new_request_id() -> str:
    """A 32-hex-digit id unique across processes: a random per-process prefix and a counter.

    Cheaper than ``uuid4()`` per call (no system call); a forked child draws a new prefix.
    """
    return f"{_id_prefix}{next(_id_counter):016x}"


def current_call() -> ModelCall | None:
    """The call being tracked here (inside a decorated function or ``with`` block), if any."""
    return _current_call.get()


def error_type_of(exc: BaseException) -> str:
    """``error.type`` for an exception: its class name (``RateLimitError``, ``TimeoutError``)."""
    return type(exc).__qualname__


class ModelCall:
    """One call in flight. Report what the response did not say; the rest is extracted."""

    __slots__ = (
        "_accumulator",
        "_done",
        "_explicit_usage",
        "_first_chunk_at",
        "_hide_usage_chunk",
        "_record",
        "_recorder",
        "_response_usage",
        "_t0",
    )

    def __init__(self, record: CallRecord, recorder: Recorder | None, hide_usage_chunk: bool = False) -> None:
        self._record = record
        self._recorder = recorder
        self._t0 = clock.monotonic()
        self._accumulator: UsageAccumulator | None = None  # made at the first stream chunk
        self._explicit_usage: Usage | None = None
        self._response_usage: Usage | None = None
        self._first_chunk_at: float | None = None
        self._hide_usage_chunk = hide_usage_chunk
        self._done = False

    @property
    def request_id(self) -> str:
        """Pass this to :func:`nexus_otel.track_feedback` to attach feedback to the call."""
        return self._record.request_id

    @property
    def record(self) -> CallRecord:
        return self._record

    def record_usage(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
        reasoning_tokens: int = 0,
        input_includes_cache: bool = True,
    ) -> None:
        """Report usage explicitly (overrides what responses and chunks said).

        ``input_includes_cache=False`` is for shapes that count cached input apart
        (like Anthropic's); ``output_tokens`` always includes reasoning tokens.
        A bad value is logged and dropped, never raised.
        """
        try:
            if input_includes_cache:
                self._explicit_usage = Usage(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_read_tokens=cache_read_tokens,
                    cache_write_5m_tokens=cache_write_tokens,
                    cache_write_1h_tokens=cache_write_1h_tokens,
                    reasoning_tokens=reasoning_tokens,
                )
            else:
                self._explicit_usage = Usage.from_parts(
                    uncached_input_tokens=input_tokens,
                    cache_read_tokens=cache_read_tokens,
                    cache_write_5m_tokens=cache_write_tokens,
                    cache_write_1h_tokens=cache_write_1h_tokens,
                    output_tokens=output_tokens,
                    reasoning_tokens=reasoning_tokens,
                )
        except (TypeError, ValueError) as exc:
            _log.warning("nexus-otel dropped invalid usage for %s: %s", self._record.model, exc)

    def record_response(self, response: Any) -> None:
        """Take usage and the response model from a provider response (or dict)."""
        try:
            usage = usage_from_response(response)
            if usage is not None:
                self._response_usage = usage
            model = response_model_from(response)
            if model:
                self._record.response_model = model
        except Exception:
            _log.exception("nexus-otel could not read usage from a %s", type(response).__name__)

    def set_response_model(self, model: str) -> None:
        self._record.response_model = model

    def wrap_stream(self, stream: Any) -> Any:
        """Observe a stream's chunks for this call (TTFT, usage) without ending the call."""
        hooks = _ObserveOnly(self)
        if is_async_stream(stream):
            return AsyncStreamWrapper(stream, hooks)
        return SyncStreamWrapper(stream, hooks)

    # -- lifecycle (used by the decorator, the stream wrappers and integrations) -----
    def on_chunk(self, chunk: Any) -> bool:
        if self._first_chunk_at is None:
            self._first_chunk_at = clock.monotonic()
            self._record.streamed = True
        if self._accumulator is None:
            self._accumulator = UsageAccumulator()
        self._accumulator.feed(chunk)
        return not (self._hide_usage_chunk and _is_usage_only_chunk(chunk))

    def on_end(self, error: BaseException | None) -> None:
        self.finish(error)

    def finish(self, error: BaseException | str | None = None) -> None:
        """Record the call; only the first call has an effect."""
        if self._done:
            return
        self._done = True
        try:
            rec = self._record
            rec.duration_s = clock.monotonic() - self._t0
            if self._first_chunk_at is not None:
                rec.ttft_s = self._first_chunk_at - self._t0
            if error is not None and not isinstance(error, GeneratorExit):
                rec.error_type = error if isinstance(error, str) else error_type_of(error)
            acc = self._accumulator
            rec.usage = self._explicit_usage or (acc.usage if acc else None) or self._response_usage
            if not rec.response_model and acc is not None and acc.response_model:
                rec.response_model = acc.response_model
            (self._recorder or get_recorder()).record_call(rec)
        except Exception:
            _log.exception("nexus-otel failed to record a model call")


class _ObserveOnly:
    def __init__(self, call: ModelCall) -> None:
        self._call = call

    def on_chunk(self, chunk: Any) -> bool:
        return self._call.on_chunk(chunk)

    def on_end(self, error: BaseException | None) -> None:
        return None


def _is_usage_only_chunk(chunk: Any) -> bool:
    choices = chunk.get("choices") if isinstance(chunk, dict) else getattr(chunk, "choices", None)
    usage = chunk.get("usage") if isinstance(chunk, dict) else getattr(chunk, "usage", None)
    return usage is not None and choices is not None and len(choices) == 0


def start_call(
    *,
    model: str,
    provider: str,
    operation: str = "chat",
    server_address: str | None = None,
    feature: str | None = None,
    team: str | None = None,
    project: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    routed: bool = False,
    baseline_model: str | None = None,
    router_confidence: float | None = None,
    request_id: str | None = None,
    recorder: Recorder | None = None,
    hide_usage_chunk: bool = False,
) -> ModelCall:
    """Begin tracking a call now, without validation (callers validated already)."""
    return _begin_call(
        (model, provider, operation, server_address, feature, team, project, user_id, session_id),
        (routed, baseline_model, router_confidence),
        request_id,
        recorder,
        hide_usage_chunk,
    )


def _begin_call(
    names: tuple[str, str, str, str | None, str | None, str | None, str | None, str | None, str | None],
    routing: tuple[bool, str | None, float | None],
    request_id: str | None,
    recorder: Recorder | None,
    hide_usage_chunk: bool,
) -> ModelCall:
    """:func:`start_call` with its arguments prepared once by the decorator or integration.

    ``names`` is (model, provider, operation, server_address, feature, team,
    project, user_id, session_id); ``routing`` is (routed, baseline_model,
    router_confidence). Positional on purpose: matching a dozen keyword
    arguments per call costs more than the rest of starting one.
    """
    model, provider, operation, server_address, feature, team, project, user_id, session_id = names
    routed, baseline_model, router_confidence = routing
    ctx = _attribution.get()
    record = CallRecord(
        model,
        provider,
        operation,
        clock.now(),
        0.0,
        None,
        None,
        server_address,
        request_id or new_request_id(),
        user_id or ctx.user_id,
        session_id or ctx.session_id,
        team or ctx.team,
        project or ctx.project,
        feature or ctx.feature,
        None,
        False,
        None,
        routed,
        baseline_model,
        router_confidence,
    )
    return ModelCall(record, recorder, hide_usage_chunk)


_NOT_A_STREAM, _SYNC_STREAM, _ASYNC_STREAM = 0, 1, 2
_STREAM_KINDS: dict[type, int] = {}  # by result type: the checks below depend on the type only


def _stream_kind(result: Any) -> int:
    cls = type(result)
    kind = _STREAM_KINDS.get(cls)
    if kind is None:
        # hasattr() on a class whose metaclass has __getattr__ (pydantic's) raises and
        # formats an AttributeError per miss: worth deciding once per response type.
        if is_async_stream(result):
            kind = _ASYNC_STREAM
        elif is_sync_stream(result):
            kind = _SYNC_STREAM
        else:
            kind = _NOT_A_STREAM
        if len(_STREAM_KINDS) < 1024:
            _STREAM_KINDS[cls] = kind
    return kind


def settle(call: ModelCall, result: Any) -> Any:
    """Finish now, or hand the call to a stream wrapper that finishes when the stream does."""
    try:
        kind = _stream_kind(result)
        if kind == _ASYNC_STREAM:
            return AsyncStreamWrapper(result, call)
        if kind == _SYNC_STREAM:
            return SyncStreamWrapper(result, call)
        call.record_response(result)
    except Exception:
        _log.exception("nexus-otel could not observe a %s result", type(result).__name__)
    call.finish(None)
    return result
