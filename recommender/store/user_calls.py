"""One user's raw calls, found through ``user_calls`` (rollup migrations 14 and 15).

``model_calls`` has no index led by ``user_id`` since migration 14: the collector's fold files
each user's calls of a day in ``user_calls (day_start, user_id, first_call_id) -> first_ts,
last_ts, call_ids`` instead (``exporters.rollup.user_calls``). A user-filtered read of
``model_calls`` ANDs :func:`user_calls_clause` to its WHERE: the user's call ids, one short
primary-key range per day of the range, each group's ids listed by ``json_each``, plus the
calls above the fold mark (committed, not folded yet: at most one deferred fold's worth),
read by rowid.
"""

from __future__ import annotations

from typing import Final

from exporters.rollup.user_calls import DAY as _DAY

__all__ = ["UNFOLDED_CALLS", "first_call_sql", "user_calls_clause", "user_calls_in_range"]

#: The calls the fold has not reached yet (the ``fold_marks`` row of ``model_calls``).
UNFOLDED_CALLS: Final = "(SELECT COALESCE(MAX(last_id), 0) FROM fold_marks WHERE source = 'model_calls')"


def _days(first: str, stop: str, source: str = "") -> str:
    """A subquery listing the day starts from ``first`` up to before ``stop`` (SQL expressions)."""
    step = f"SELECT v + {_DAY}, stop FROM h WHERE v + {_DAY} < stop"
    return f"(WITH RECURSIVE h(v, stop) AS (SELECT {first}, {stop}{source} UNION ALL {step}) SELECT v FROM h)"


def user_calls_clause(
    user_id: object, *, start: float | None = None, end: float | None = None, alias: str = ""
) -> tuple[str, list[object]]:
    """``(sql, params)`` true for ``user_id``'s calls (in ``[start, end)`` when given, else ever).

    It selects by row id only: the caller keeps its own ``user_id = ?`` and time terms, which
    the unfolded calls and the calls of the range's edge days still need. The days are listed
    by a recursive CTE, so each is a seek into the primary key; SQLite would otherwise read
    every user's rows of the range.
    """
    prefix = f"{alias}." if alias else ""
    if start is None or end is None:
        days = _days("MIN(day_start)", f"MAX(day_start) + {_DAY}", " FROM user_calls")
        params: list[object] = [user_id]
        in_range = ""
    else:
        days = _days("?", "?")
        params = [int(start // _DAY) * _DAY, end, user_id, start, end]
        in_range = " AND u.last_ts >= ? AND u.first_ts < ?"  # a group of the edge days may miss the range
    sql = (
        f"({prefix}id IN (SELECT j.value FROM user_calls u, json_each(u.call_ids) j "
        f"WHERE u.day_start IN {days} AND u.user_id = ?{in_range}) OR {prefix}id > {UNFOLDED_CALLS})"
    )
    return sql, params


def user_calls_in_range(
    user_id: object, start: float, end: float, *, alias: str = ""
) -> tuple[str, list[object]]:
    """``(sql, params)``: the ``model_calls`` rows of ``user_id`` with ``start <= ts < end``.

    The time terms are written ``+ts``: SQLite would otherwise take the ``(ts, ...)`` index and
    read every user's rows of the range instead of seeking ``user_calls``.
    """
    prefix = f"{alias}." if alias else ""
    user_sql, user_params = user_calls_clause(user_id, start=start, end=end, alias=alias)
    return f"+{prefix}ts >= ? AND +{prefix}ts < ? AND {user_sql}", [start, end, *user_params]


def first_call_sql(filters: list[str]) -> str:
    """SQL for the time of a user's first call matching ``c.<name> = ?`` for each name in ``filters``.

    Parameters: the user id, the user id, the filter values, the user id, the filter values.
    The days are walked in order from the user's first active day (``user_day``, kept
    forever); the first day with a matching call ends the walk (its calls are sorted by time,
    day by day), as the ``(user_id, ts)`` index's order once did; then the unfolded calls.
    """
    clauses = "".join(f" AND c.{name} = ?" for name in filters)
    first_day = "(SELECT CAST(strftime('%s', MIN(day)) AS INTEGER) FROM user_day WHERE user_id = u0.user)"
    first = f"MAX(COALESCE({first_day}, 0), (SELECT MIN(day_start) FROM user_calls))"
    days = _days(first, f"(SELECT MAX(day_start) + {_DAY} FROM user_calls)", " FROM (SELECT ? AS user) u0")
    folded = (
        "SELECT * FROM (SELECT c.ts AS t FROM user_calls u, json_each(u.call_ids) j "
        f"JOIN model_calls c ON c.id = j.value WHERE u.day_start IN {days} AND u.user_id = ?{clauses} "
        "ORDER BY u.day_start, c.ts LIMIT 1)"
    )
    unfolded = f"SELECT c.ts FROM model_calls c WHERE c.id > {UNFOLDED_CALLS} AND c.user_id = ?{clauses}"
    return f"SELECT MIN(t) FROM ({folded} UNION ALL {unfolded})"
