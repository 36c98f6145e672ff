"""Who and what a call is for: user, session, team, project, feature — on contextvars.

``attribution(...)`` works as a context manager and as a decorator (sync and
async). Scopes nest: inner values override outer ones, unset values are
inherited. Each asyncio task runs in a copy of its creator's context, so
``asyncio.gather`` tasks see their own scopes. A new thread starts with an
empty context (Python does not copy it): run the target through
``contextvars.copy_context().run`` — or submit ``propagate(fn)`` to an
executor — to carry the caller's attribution over.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Attribution", "attribution", "current", "propagate"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Attribution:
    user_id: str | None = None
    session_id: str | None = None
    team: str | None = None
    project: str | None = None
    feature: str | None = None


_EMPTY = Attribution()
_current: contextvars.ContextVar[Attribution] = contextvars.ContextVar(
    "nexus_otel_attribution", default=_EMPTY
)


def current() -> Attribution:
    """The attribution in force here."""
    return _current.get()


class attribution:
    """Attribute everything recorded inside to a user, session, team, project and feature."""

    current = staticmethod(current)

    def __init__(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        team: str | None = None,
        project: str | None = None,
        feature: str | None = None,
    ) -> None:
        fields = {
            "user_id": user_id,
            "session_id": session_id,
            "team": team,
            "project": project,
            "feature": feature,
        }
        for name, value in fields.items():
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"attribution({name}=...) must be a non-empty str or None, got {value!r}")
        self._fields = {k: v for k, v in fields.items() if v is not None}
        self._tokens: list[contextvars.Token[Attribution]] = []

    def __enter__(self) -> Attribution:
        merged = dataclasses.replace(_current.get(), **self._fields)
        self._tokens.append(_current.set(merged))
        return merged

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        fields = self._fields
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with attribution(**fields):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with attribution(**fields):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def propagate(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` bound to a copy of the current context, for another thread or an executor."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return run
