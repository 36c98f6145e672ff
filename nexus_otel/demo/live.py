"""Live demo traffic: Poisson arrivals handed to a pool of threads calling the official clients.

Calls arrive at the rate of the simulator's daily curve regardless of how long
each takes (a slow incident must not slow the arrivals down, as it would not
in production), and each pool thread owns a :class:`TrafficSimulator` because
they are not thread-safe. Threads sleep the simulated provider latency for real,
so durations and time to first token look like production. The volume and the
curve are those of the backfilled history, so the anomaly bands see ordinary
traffic as ordinary.

A live cost spike is a runaway agent loop: answers grow (the simulator's verbose
model) and calls keep arriving at no less than :data:`SPIKE_RATE_FLOOR` of the
peak rate. Without the floor, a spike started at 04:00 on a Saturday adds a few
cents an hour, below the anomaly bands' absolute minimum, and the demo would
show no cost alert at the quiet hours someone is most likely to try it.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .backfill import DAY, mean_rate_factor
from .traffic import Incident, Totals, TrafficSimulator

__all__ = ["SPIKE_RATE_FLOOR", "LiveTraffic"]

#: while a cost spike is on, arrivals run at least at this share of the peak rate
SPIKE_RATE_FLOOR = 0.4


class LiveTraffic:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`totals` sums every thread's calls."""

    def __init__(
        self,
        *,
        calls_per_day: float,
        seed: int = 7,
        users: int = 60,
        incidents: tuple[Incident, ...] = (),
        max_concurrency: int = 32,
    ) -> None:
        if calls_per_day <= 0 or max_concurrency < 1:
            raise ValueError("calls_per_day must be > 0 and max_concurrency >= 1")
        self.peak_rate = calls_per_day / DAY / mean_rate_factor()
        self._seeds = itertools.count(seed + 1000)
        self._users = users
        self._incidents = incidents
        self._sims: list[TrafficSimulator] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="demo-call")
        self._arrivals = TrafficSimulator(seed=seed, users=users)  # only its rng and curve are used
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._arrive, name="demo-arrivals", daemon=True)
        self._thread.start()

    def _arrive(self) -> None:
        rng = self._arrivals.rng
        while True:
            rate = self.peak_rate * self.rate_factor(time.time())
            if self._stop.wait(rng.expovariate(rate)):
                return
            self._pool.submit(self._one_call)

    def rate_factor(self, t_unix: float) -> float:
        """The history's curve, floored at :data:`SPIKE_RATE_FLOOR` while a cost spike is on."""
        factor = TrafficSimulator.rate_factor(t_unix)
        t_rel = t_unix - self.started_at
        if any(i.kind == "cost_spike" and i.active(t_rel) for i in self._incidents):
            return max(factor, SPIKE_RATE_FLOOR)
        return factor

    def _simulator(self) -> TrafficSimulator:
        sim = getattr(self._local, "sim", None)
        if sim is None:
            with self._lock:
                sim = TrafficSimulator(
                    seed=next(self._seeds),
                    users=self._users,
                    incidents=self._incidents,
                    live=True,
                    stopping=self._stop,
                )
                self._sims.append(sim)
            self._local.sim = sim
        return sim

    def _one_call(self) -> None:
        sim = self._simulator()
        if sim.apply_incidents(time.time() - self.started_at):
            sim.one_call()

    def stop(self) -> None:
        """Stop the arrivals; calls in flight finish (and are recorded) first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def totals(self) -> Totals:
        out = Totals()
        with self._lock:
            for sim in self._sims:
                t = sim.totals
                out.calls += t.calls
                out.errors += t.errors
                out.feedback += t.feedback
                out.sessions += t.sessions
        return out
