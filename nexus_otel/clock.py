"""Where nexus_otel reads the time, so history can be recorded faster than real time.

Everything nexus_otel timestamps or times (call start, duration, time to first
chunk, product events) reads :data:`now` and :data:`monotonic` from this module
at call time. Normally they are :func:`time.time` and :func:`time.perf_counter`.
:class:`SimulatedClock` swaps in a clock that only moves when told to, which is
how the demo backfills weeks of history in seconds and how tests record
traffic on chosen dates through the real decorators.

The swap is process-wide (not per thread or task): a simulated clock is for a
process that records nothing else meanwhile, such as a backfill or a test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["SimulatedClock", "monotonic", "now", "sleep"]

#: Wall-clock time, Unix seconds.
now: Callable[[], float] = time.time
#: A clock for durations, seconds from an arbitrary origin.
monotonic: Callable[[], float] = time.perf_counter
#: Wait this many seconds (the demo's fake providers use it to take their time).
sleep: Callable[[float], None] = time.sleep

_active_lock = threading.Lock()
_active: SimulatedClock | None = None


class SimulatedClock:
    """A clock that stands still until :meth:`advance` (or :data:`sleep`) moves it.

    ``with SimulatedClock(start=unix_seconds) as clock:`` makes nexus_otel's
    :data:`now` return ``clock.now``, durations measured by :data:`monotonic`
    equal the simulated time that passed, and :data:`sleep` advance the clock
    instead of waiting. Only one can be active at a time.
    """

    __slots__ = ("_lock", "_saved", "_t")

    def __init__(self, *, start: float) -> None:
        if start < 0:
            raise ValueError(f"start must be a Unix time (>= 0), got {start!r}")
        self._t = float(start)
        self._lock = threading.Lock()
        self._saved: tuple[Callable[[], float], Callable[[], float], Callable[[float], None]] | None = None

    @property
    def now(self) -> float:
        """The simulated Unix time."""
        return self._t

    def time(self) -> float:
        return self._t

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the new time. Negative steps are refused."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got {seconds!r} seconds")
        with self._lock:
            self._t += seconds
            return self._t

    def advance_to(self, t: float) -> float:
        """Move the clock to ``t`` (no-op when it is already there or later)."""
        with self._lock:
            if t > self._t:
                self._t = float(t)
            return self._t

    def set(self, t: float) -> float:
        """Put the clock at ``t``, even backwards: a simulation of overlapping calls starts
        each call at its own arrival time. Never call it while a call is being timed."""
        with self._lock:
            self._t = float(t)
            return self._t

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def __enter__(self) -> SimulatedClock:
        global _active, now, monotonic, sleep
        with _active_lock:
            if _active is not None:
                raise RuntimeError("a SimulatedClock is already active in this process")
            _active = self
            self._saved = (now, monotonic, sleep)
            now = monotonic = self.time
            sleep = self._sleep
        return self

    def __exit__(self, *exc: object) -> None:
        global _active, now, monotonic, sleep
        with _active_lock:
            if self._saved is not None:
                now, monotonic, sleep = self._saved
                self._saved = None
            _active = None
