"""One sync and one async wrapper for provider streams, each finalising exactly once.

A wrapped stream behaves like the original (iteration, context manager,
``close()``, every other attribute) while it reports each chunk to its
:class:`StreamHooks` and ends the call once: when the stream is exhausted,
closed early, fails, or is garbage-collected unfinished. Providers only
supply hooks; the wrappers own the lifecycle.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

__all__ = ["AsyncStreamWrapper", "StreamHooks", "SyncStreamWrapper", "is_async_stream", "is_sync_stream"]

_log = logging.getLogger(__name__)
_NOT_STREAMS = (str, bytes, bytearray, dict, list, tuple)


class StreamHooks(Protocol):
    def on_chunk(self, chunk: Any) -> bool:
        """Observe a chunk; return False to hide it from the caller."""

    def on_end(self, error: BaseException | None) -> None:
        """Called exactly once, with the error that ended the stream, if any."""


def is_sync_stream(obj: Any) -> bool:
    return (
        not isinstance(obj, _NOT_STREAMS)
        and hasattr(type(obj), "__next__")
        and hasattr(type(obj), "__iter__")
    )


def is_async_stream(obj: Any) -> bool:
    return hasattr(type(obj), "__anext__") and hasattr(type(obj), "__aiter__")


class _Base:
    __slots__ = ("__wrapped__", "_done", "_hooks", "_it")

    def __init__(self, stream: Any, hooks: StreamHooks) -> None:
        self.__wrapped__ = stream
        self._hooks = hooks
        self._done = False

    def _see(self, chunk: Any) -> bool:
        try:
            return self._hooks.on_chunk(chunk) is not False
        except Exception:
            _log.exception("nexus-otel stream hook failed; the chunk is passed on unobserved")
            return True

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._hooks.on_end(error)
        except Exception:
            _log.exception("nexus-otel failed to finish a stream's record")

    def __getattr__(self, name: str) -> Any:
        if name in _Base.__slots__:  # not yet set: never recurse into the wrapped stream
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __del__(self) -> None:
        # A stream dropped without being exhausted or closed still gets its record.
        if not getattr(self, "_done", True):
            self._end(None)


class SyncStreamWrapper(_Base):
    """Wraps an iterator stream (``openai.Stream``, ``anthropic.Stream``, a generator)."""

    __slots__ = ()

    def __init__(self, stream: Any, hooks: StreamHooks) -> None:
        super().__init__(stream, hooks)
        self._it = iter(stream)

    def __iter__(self) -> SyncStreamWrapper:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                chunk = next(self._it)
            except StopIteration:
                self._end(None)
                raise
            except BaseException as exc:
                self._end(exc)
                raise
            if self._see(chunk):
                return chunk

    def close(self, error: BaseException | None = None) -> None:
        """Close the wrapped stream and end the call (with ``error`` when one ended it)."""
        try:
            close = getattr(self.__wrapped__, "close", None)
            if close is not None:
                close()
        finally:
            self._end(error)

    def __enter__(self) -> SyncStreamWrapper:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close(exc)


class AsyncStreamWrapper(_Base):
    """Wraps an async iterator stream (``openai.AsyncStream``, an async generator)."""

    __slots__ = ()

    def __init__(self, stream: Any, hooks: StreamHooks) -> None:
        super().__init__(stream, hooks)
        self._it = stream.__aiter__()

    def __aiter__(self) -> AsyncStreamWrapper:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                chunk = await self._it.__anext__()
            except StopAsyncIteration:
                self._end(None)
                raise
            except BaseException as exc:
                self._end(exc)
                raise
            if self._see(chunk):
                return chunk

    async def aclose(self, error: BaseException | None = None) -> None:
        """Close the wrapped stream and end the call (with ``error`` when one ended it)."""
        try:
            close = getattr(self.__wrapped__, "close", None) or getattr(self.__wrapped__, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._end(error)

    close = aclose

    async def __aenter__(self) -> AsyncStreamWrapper:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        await self.aclose(exc)
