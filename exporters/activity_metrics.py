"""Active-user gauges for Prometheus, computed from the rollup's per-user days.

User ids never become metric labels (they would explode cardinality), so the
only way Prometheus and the dashboards learn how many people use the AI
features is a count the collector computes from ``user_day``:
``nexus_active_users{window="1d"|"7d"|"30d"}`` is the number of distinct users
whose last event falls within the trailing window ending now. A scrape reuses
the previous answer for ``cache_s`` seconds so frequent scrapes stay cheap.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ACTIVE_USER_WINDOWS", "ActiveUsersCollector", "active_users"]

log = logging.getLogger(__name__)

#: label value -> window length in seconds
ACTIVE_USER_WINDOWS: dict[str, int] = {"1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

_QUERY = "SELECT COUNT(DISTINCT user_id) FROM user_day WHERE day >= ? AND last_seen > ? AND first_seen <= ?"


def _utc_day(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d")


def active_users(db: sqlite3.Connection, *, now: float) -> dict[str, int]:
    """Distinct users active in each trailing window ``(now - length, now]``."""
    counts: dict[str, int] = {}
    for window, length in ACTIVE_USER_WINDOWS.items():
        since = now - length
        # a user_day row dated before the window's first day cannot have events inside it
        counts[window] = db.execute(_QUERY, (_utc_day(since), since, now)).fetchone()[0]
    return counts


class ActiveUsersCollector(Collector):
    """Register with a ``CollectorRegistry``; reads the rollup at most once per ``cache_s``."""

    def __init__(self, rollup: str, *, cache_s: float = 15.0, clock: Callable[[], float] = time.time) -> None:
        self.rollup = rollup
        self.cache_s = cache_s
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, int]] | None = None

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        counts = self._counts()
        for window, count in (counts or {}).items():
            family.add_metric([window], count)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "nexus_active_users",
            "Distinct users with a model call or product event in the trailing window (from the rollup).",
            labels=["window"],
        )

    def _counts(self) -> dict[str, int] | None:
        now = self.clock()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.cache_s:
                return self._cached[1]
            if not Path(self.rollup).exists():
                return None
            try:
                db = sqlite3.connect(f"file:{self.rollup}?mode=ro", uri=True, timeout=5)
                try:
                    counts = active_users(db, now=now)
                finally:
                    db.close()
            except sqlite3.Error:
                log.exception("active users could not be read from %s", self.rollup)
                return None
            self._cached = (now, counts)
            return counts
