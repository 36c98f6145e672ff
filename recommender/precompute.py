"""Insight answers computed before anyone asks: the standard periods of every configured scope.

At 10 million events a 90-day answer takes seconds to a minute to compute,
far over what a dashboard viewer should wait, while the same few questions
(``/api/analytics``, ``/costs``, ``/models`` and recommendations over ``24h``,
``7d``, ``30d``, ``90d`` and ``mtd``, for the admin scope and each team key's
scope, with no other filter) are asked all day. One background thread keeps
those answers: a pass computes them one after the other (one CPU at most,
never two passes at once) and swaps each in as soon as it is done; requests
for them are answered from here, with the answer's age, and everything else
goes through the result cache as before.

A pass runs at start-up, then whenever ``precompute_interval_s`` has passed
since the previous one ended and the rollup changed since the previous one
started (SQLite's ``PRAGMA data_version``: new rows, pruning, anything any
connection committed). Without changes the answers are still redone every
ten intervals, because relative periods slide with the clock.
``precompute_interval_s = 0`` turns precomputing off.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .auth import Principal
from .insights.analytics import analytics_report
from .insights.costs import cost_report
from .insights.models import model_report
from .insights.recommendations import recommend
from .params import Query, parse_query
from .store.reader import Rollup

__all__ = ["INSIGHTS", "PERIODS", "Insight", "Precomputed", "Precomputer", "cache_key"]

log = logging.getLogger(__name__)

#: The periods kept ready for every scope.
PERIODS: tuple[str, ...] = ("24h", "7d", "30d", "90d", "mtd")
#: Without rollup changes, a pass still runs after this many intervals (relative periods slide).
_IDLE_PASSES = 10


@dataclass(frozen=True, slots=True)
class Insight:
    """One cached insight endpoint: its default period and how it is computed."""

    default_period: str
    compute: Callable[[Rollup, dict[str, Any], Principal, Query], dict[str, Any]]


def _recommendations(store: Rollup, conf: dict[str, Any], who: Principal, query: Query) -> dict[str, Any]:
    items = recommend(store, query, who=who, settings=conf)
    return {"recommendations": [item.to_dict() for item in items]}


#: endpoint name -> how to answer it; the views and the precomputer use the same definitions.
INSIGHTS: dict[str, Insight] = {
    "analytics": Insight("7d", lambda store, conf, who, q: analytics_report(store, q)),
    "costs": Insight(
        "7d", lambda store, conf, who, q: cost_report(store, q, who, budgets_path=conf["budgets_path"])
    ),
    "models": Insight("7d", lambda store, conf, who, q: model_report(store, q)),
    "recommendations": Insight("30d", _recommendations),
}


def cache_key(name: str, who: Principal, query: Query) -> Hashable:
    """The key of an answer: endpoint, the key's scope, the period as asked, the (scoped) filters."""
    period = query.range.period if query.range.period != "custom" else (query.range.start, query.range.end)
    return (name, who.scope, period, query.filters)  # never shared between scopes


@dataclass(frozen=True, slots=True)
class Precomputed:
    value: tuple[dict[str, Any], dict[str, Any]]  # (the query it answers, the data)
    computed_at: float  # time.time() when it was computed


class Precomputer:
    """Keeps ``periods`` (default :data:`PERIODS`) x :data:`INSIGHTS` answered for each of ``principals``.

    :meth:`start` runs passes on a thread; :meth:`run_pass` runs one in the
    caller's thread (what the thread does each time).
    """

    def __init__(
        self,
        rollup: Rollup,
        settings: dict[str, Any],
        principals: list[Principal],
        *,
        interval_s: float,
        periods: tuple[str, ...] = PERIODS,
    ) -> None:
        self.rollup = rollup
        self.periods = periods
        self.settings = settings
        self.principals = principals
        self.interval_s = interval_s
        self.passes = 0  # completed passes
        self.last_pass_s: float | None = None  # how long the last completed pass took
        self.last_jobs: list[tuple[str, str, str, float]] = []  # (endpoint, scope, period, seconds)
        self._answers: dict[Hashable, Precomputed] = {}
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()  # one pass at a time, whoever runs it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._version_conn: sqlite3.Connection | None = None
        self._seen_version: int | None = None
        self._busy_conn: sqlite3.Connection | None = None

    def get(self, key: Hashable) -> Precomputed | None:
        with self._lock:
            return self._answers.get(key)

    def jobs(self) -> list[tuple[str, Principal, str]]:
        return [(name, who, p) for who in self.principals for p in self.periods for name in INSIGHTS]

    def _version(self) -> int:
        # data_version is per connection: it changes when *another* connection commits
        if self._version_conn is None:
            self._version_conn = sqlite3.connect(
                f"file:{self.rollup.path}?mode=ro", uri=True, check_same_thread=False
            )
        return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])

    def run_pass(self) -> int:
        """Compute every job once (sequentially); returns how many answers were stored."""
        with self._pass_lock:
            started = time.monotonic()
            self._seen_version = self._version()
            self._busy_conn = self.rollup.connection()
            stored = 0
            timings = []
            try:
                for name, who, period in self.jobs():
                    if self._stop.is_set():
                        break
                    began = time.monotonic()
                    if self._compute(name, who, period):
                        stored += 1
                    timings.append((name, who.scope, period, time.monotonic() - began))
            finally:
                self._busy_conn = None
            if not self._stop.is_set():
                self.passes += 1
                self.last_pass_s = time.monotonic() - started
                self.last_jobs = timings
            return stored

    def _compute(self, name: str, who: Principal, period: str) -> bool:
        insight = INSIGHTS[name]
        try:
            query = who.restrict(parse_query({"period": period}, default_period=insight.default_period))
            data = insight.compute(self.rollup, self.settings, who, query)
        except sqlite3.OperationalError:
            if self._stop.is_set():
                return False  # interrupted by stop()
            log.exception("precomputing %s %s for %s failed", name, period, who.scope)
            return False
        except Exception:  # one failing answer must not stop the others; requests compute it instead
            log.exception("precomputing %s %s for %s failed", name, period, who.scope)
            return False
        entry = Precomputed((query.to_dict(), data), time.time())
        with self._lock:
            self._answers[cache_key(name, who, query)] = entry
        return True

    def due(self, since_pass_s: float) -> bool:
        """Whether a pass should run now: the rollup changed since the last pass began, or it is idle-old."""
        if since_pass_s >= _IDLE_PASSES * self.interval_s:
            return True
        try:
            return self._version() != self._seen_version
        except sqlite3.Error:
            return True

    def _loop(self) -> None:
        last_end = None
        while not self._stop.is_set():
            if last_end is None or self.due(time.monotonic() - last_end):
                try:
                    self.run_pass()
                except Exception:  # keep the thread alive: the next interval tries again
                    log.exception("a precompute pass failed")
                last_end = time.monotonic()
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        if self.interval_s <= 0 or not self.principals or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="nexus-precompute", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread: a statement in progress is interrupted, the pass is abandoned."""
        self._stop.set()
        conn = self._busy_conn
        if conn is not None:
            conn.interrupt()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._version_conn is not None:
            self._version_conn.close()
            self._version_conn = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
