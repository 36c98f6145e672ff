"""Retention: raw events older than the retention period are deleted; aggregates stay.

The minute/hour/day aggregates, ``user_day`` and the other per-day and per-hour
tables folded from the raw rows (``user_team_day``, ``feature_use_day``, the call
bands, ``team_hour``, the projections, ``error_day``, ``feedback_day``, ``user_cost_ceiling``) are what
long-range queries read, so they are kept. A raw row the aggregates do not hold yet
(above the fold marks: the writer's deferred fold) is kept until it is folded, and feedback waiting for a call
(``call_band_pending``) goes with its feedback row. Deleting happens in one
transaction, so a failed prune leaves every table as it was.
"""

from __future__ import annotations

import re
import time

import sqlite_utils

from .aggregate import fold_marks
from .connection import immediate_transaction
from .schema import RAW_TABLES
from .user_calls import prune_user_calls

__all__ = ["parse_duration", "prune"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``2w``, ``45s``; ``ValueError`` otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected a number and a unit s, m, h, d or w, e.g. 30d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return seconds


def prune(db: sqlite_utils.Database, *, older_than_s: float, now: float | None = None) -> dict[str, int]:
    """Delete raw events with ``ts`` before ``now - older_than_s``; rows deleted per table."""
    if older_than_s <= 0:
        raise ValueError("older_than_s must be > 0")
    cutoff = (time.time() if now is None else now) - older_than_s
    deleted: dict[str, int] = {}
    with immediate_transaction(db) as conn:
        marks = fold_marks(conn)
        folded_up_to = {"model_calls": marks.calls, "feature_uses": marks.uses, "feedback": marks.feedback}
        for table in RAW_TABLES:
            if table in folded_up_to:
                sql, args = f"DELETE FROM {table} WHERE ts < ? AND id <= ?", (cutoff, folded_up_to[table])
            else:
                sql, args = f"DELETE FROM {table} WHERE ts < ?", (cutoff,)
            deleted[table] = conn.execute(sql, args).rowcount
        if deleted["model_calls"]:
            prune_user_calls(conn, cutoff=cutoff)
        if deleted["feedback"]:
            conn.execute(
                "DELETE FROM call_band_pending WHERE NOT EXISTS "
                "(SELECT 1 FROM feedback f WHERE f.id = call_band_pending.feedback_id)"
            )
    return deleted
