"""Users' bitmap ordinals (``user_ordinals``), kept in memory per rollup reader.

The partial days of a range turn a day table's rows into bitmap bits: joining each row to
``user_ordinals`` in SQL cost two more b-tree searches per row (a day's ~7.5k ``user_day``
rows at 10M events: 12 ms joined, 5 ms not), and an ``/api/analytics`` answer reads several
such days. The collector only ever appends ordinals (a new user gets the next one), so the
map read once stays right and is topped up with the users numbered since, when one is missing.
Renumbering a file (``benchmarks/recommender/generate.py`` merging parts) happens offline, on a
new file, before any reader opens it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reader import Rollup

__all__ = ["UserOrdinals"]


class UserOrdinals:
    """user_id -> ordinal for one rollup, read once and topped up on a miss."""

    def __init__(self) -> None:
        self._ordinals: dict[str, int] = {}
        self._highest = -1
        self._lock = threading.Lock()

    def of(self, rollup: Rollup, users: Iterable[str]) -> list[int]:
        """The ordinals of ``users``, in order. Each user a day table holds has one, folded in the
        same transaction, so a user missing here after a top-up (read after the rows) is a bug."""
        users = list(users)
        if any(u not in self._ordinals for u in users):
            self._top_up(rollup)
        return [self._ordinals[u] for u in users]

    def _top_up(self, rollup: Rollup) -> None:
        with self._lock:
            rows = rollup.execute(
                "SELECT user_id, ordinal FROM user_ordinals WHERE ordinal > ?", (self._highest,)
            ).fetchall()
            for user, ordinal in rows:
                self._ordinals[user] = ordinal
                self._highest = max(self._highest, ordinal)
