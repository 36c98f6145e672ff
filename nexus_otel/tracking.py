"""``track_model_call``: the decorator and context manager around one model call.

As a decorator it handles sync and async functions, sync and async
generators, and functions returning provider stream objects (which come back
wrapped, so time to first chunk and the final usage are recorded when the
stream ends, is closed early, or fails). As a context manager it yields a
:class:`~nexus_otel.call.ModelCall` to report usage or a response on.

The wrapped function's exception propagates unchanged (same object, same
traceback) after ``error.type`` is recorded. Failures inside nexus-otel are
logged and counted, never raised into the caller.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .call import ModelCall, _begin_call, _current_call, current_call, settle
from .recorder import Recorder

__all__ = ["ModelCall", "current_call", "track_model_call"]

F = TypeVar("F", bound=Callable[..., Any])


class track_model_call:
    """Track one model call: as ``@track_model_call(...)`` or ``with track_model_call(...) as call``.

    Explicit ``feature``/``team``/``project``/``user_id``/``session_id`` override
    the current :func:`nexus_otel.attribution` scope. Invalid arguments raise at
    definition time.
    """

    def __init__(
        self,
        *,
        model: str,
        provider: str,
        operation: str = "chat",
        feature: str | None = None,
        team: str | None = None,
        project: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        routed: bool = False,
        baseline_model: str | None = None,
        router_confidence: float | None = None,
        server_address: str | None = None,
        request_id: str | None = None,
        recorder: Recorder | None = None,
        _hide_usage_chunk: bool = False,
    ) -> None:
        for name, value in (("model", model), ("provider", provider), ("operation", operation)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"track_model_call({name}=...) must be a non-empty string, got {value!r}")
        for name, value in (
            ("feature", feature),
            ("team", team),
            ("project", project),
            ("user_id", user_id),
            ("session_id", session_id),
            ("baseline_model", baseline_model),
            ("server_address", server_address),
            ("request_id", request_id),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(
                    f"track_model_call({name}=...) must be a non-empty string or None, got {value!r}"
                )
        if not isinstance(routed, bool):
            raise TypeError(f"track_model_call(routed=...) must be a bool, got {routed!r}")
        if routed and baseline_model is None:
            raise ValueError(
                "track_model_call(routed=True) needs baseline_model= (the model used without routing)"
            )
        if router_confidence is not None and (
            isinstance(router_confidence, bool)
            or not isinstance(router_confidence, (int, float))
            or not 0.0 <= router_confidence <= 1.0
        ):
            raise ValueError(f"router_confidence must be a number in [0, 1], got {router_confidence!r}")
        # Prepared once: _begin_call takes them positionally on every call.
        self._names = (
            model, provider, operation, server_address, feature, team, project, user_id, session_id
        )  # fmt: skip
        self._routing = (routed, baseline_model, router_confidence)
        self._request_id = request_id
        self._recorder = recorder
        self._hide_usage_chunk = _hide_usage_chunk
        self._active: list[tuple[ModelCall, contextvars.Token[ModelCall | None]]] = []

    def start(self) -> ModelCall:
        """Begin a call now."""
        return _begin_call(
            self._names, self._routing, self._request_id, self._recorder, self._hide_usage_chunk
        )

    # -- context manager ---------------------------------------------------------
    def __enter__(self) -> ModelCall:
        call = self.start()
        self._active.append((call, _current_call.set(call)))
        return call

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        call, token = self._active.pop()
        _current_call.reset(token)
        call.finish(exc)

    async def __aenter__(self) -> ModelCall:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator -----------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"track_model_call(...) decorates a callable, got {fn!r}")
        if inspect.isasyncgenfunction(fn):
            return self._wrap_async_generator(fn)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):
            return self._wrap_coroutine(fn)  # type: ignore[return-value]
        return self._wrap_function(fn)  # type: ignore[return-value]

    def _wrap_function(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self.start()
            token = _current_call.set(call)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
            finally:
                _current_call.reset(token)
            return settle(call, result)

        return wrapper

    def _wrap_coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self.start()
            token = _current_call.set(call)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                call.finish(exc)
                raise
            finally:
                _current_call.reset(token)
            return settle(call, result)

        return wrapper

    def _wrap_generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self.start()
            gen = fn(*args, **kwargs)
            error: BaseException | None = None
            try:
                while True:
                    # current_call() is visible only while the generator body runs.
                    token = _current_call.set(call)
                    try:
                        item = next(gen)
                    except StopIteration:
                        return
                    finally:
                        _current_call.reset(token)
                    call.on_chunk(item)
                    yield item
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:
                error = exc
                raise
            finally:
                call.finish(error)

        return wrapper

    def _wrap_async_generator(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self.start()
            agen = fn(*args, **kwargs)
            error: BaseException | None = None
            try:
                while True:
                    token = _current_call.set(call)
                    try:
                        item = await agen.__anext__()
                    except StopAsyncIteration:
                        return
                    finally:
                        _current_call.reset(token)
                    call.on_chunk(item)
                    yield item
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as exc:
                error = exc
                raise
            finally:
                call.finish(error)

        return wrapper
