"""A small result cache for the expensive insight endpoints (stale-while-revalidate).

Insights over 30 or 90 days of a large rollup take seconds to compute, while
dashboards and scripts ask the same questions over and over. Results are kept
per endpoint and request (the period as asked, e.g. ``30d``, and the filters
after the key's scope, so two keys never share an entry they may not both
see) for ``ttl_s``. A stale entry is still served, with its age, while one
background thread recomputes it; an entry older than ``max_stale_s`` is
recomputed before answering. Concurrent misses on one key compute once.
``ttl_s = 0`` turns caching off.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["Cached", "ResultCache"]


@dataclass(frozen=True, slots=True)
class Cached:
    value: Any
    computed_at: float  # time.time() when the value was computed
    age_s: float


class ResultCache:
    def __init__(self, ttl_s: float, *, max_stale_s: float | None = None, max_entries: int = 512) -> None:
        self.ttl_s = ttl_s
        self.max_stale_s = 10 * ttl_s if max_stale_s is None else max_stale_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, float, Any]] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._refreshing: set[Hashable] = set()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Cached:
        if self.ttl_s <= 0:
            return Cached(compute(), time.time(), 0.0)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None:
            monotonic, wall, value = entry
            age = time.monotonic() - monotonic
            if age < self.ttl_s:
                return Cached(value, wall, age)
            if age < self.max_stale_s:
                self._refresh_in_background(key, compute)
                return Cached(value, wall, age)
        with self._key_lock(key):
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[0] < self.ttl_s:
                return Cached(entry[2], entry[1], time.monotonic() - entry[0])  # computed while we waited
            return self._compute(key, compute)

    def _key_lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _compute(self, key: Hashable, compute: Callable[[], Any]) -> Cached:
        value = compute()
        stamp, wall = time.monotonic(), time.time()
        with self._lock:
            self._entries[key] = (stamp, wall, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                old, _ = self._entries.popitem(last=False)
                self._key_locks.pop(old, None)
        return Cached(value, wall, 0.0)

    def _refresh_in_background(self, key: Hashable, compute: Callable[[], Any]) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                with self._key_lock(key):
                    self._compute(key, compute)
            except Exception:  # the stale value stays; the next request tries again
                import logging

                logging.getLogger(__name__).exception("refreshing a cached insight failed")
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        threading.Thread(target=run, name="nexus-insight-refresh", daemon=True).start()
