"""Wrap one bound ``create`` method of one client instance. Shared by every provider."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from ..call import _begin_call, settle

__all__ = ["is_wrapped", "wrap_create"]

_log = logging.getLogger(__name__)
_MARK = "__nexus_otel_wrapped__"


def is_wrapped(method: Any) -> bool:
    return getattr(method, _MARK, False)


def wrap_create(
    resource: Any,
    *,
    provider: str,
    operation: str,
    server_address: str | None,
    attribution: dict[str, str | None],
    prepare: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Replace ``resource.create`` on this instance only; idempotent.

    ``prepare(kwargs)`` may adjust the request (e.g. ask for streamed usage) and
    returns True when the extra usage-only chunk must be hidden from the caller.
    """
    original = resource.create
    if is_wrapped(original):
        return
    feature, team, project = (attribution.get(k) or None for k in ("feature", "team", "project"))
    no_routing = (False, None, None)

    def begin(kwargs: dict[str, Any]) -> Any:
        try:
            hide = prepare(kwargs) if prepare is not None else False
            model = kwargs.get("model")
            if not isinstance(model, str) or not model:
                model = "unknown"
            names = (model, provider, operation, server_address, feature, team, project, None, None)
            return _begin_call(names, no_routing, None, None, hide)
        except Exception:
            _log.exception("nexus-otel could not start tracking a %s call", provider)
            return None

    asynchronous = (
        inspect.iscoroutinefunction(original)
        or inspect.iscoroutinefunction(inspect.unwrap(original))
        or type(resource).__name__.startswith("Async")  # SDK decorators can hide the coroutine
    )
    if asynchronous:

        @functools.wraps(original)
        async def async_create(*args: Any, **kwargs: Any) -> Any:
            call = begin(kwargs)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                if call is not None:
                    call.finish(exc)
                raise
            return result if call is None else settle(call, result)

        setattr(async_create, _MARK, True)
        resource.create = async_create
        return

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = begin(kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                call.finish(exc)
            raise
        return result if call is None else settle(call, result)

    setattr(create, _MARK, True)
    resource.create = create
