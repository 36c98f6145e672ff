"""The costliest users of a range: exact sums for the few users whose cost ceiling could rank.

Whole UTC days come from ``user_day`` (no filter but the user) or ``user_team_day`` (team,
project and user filters), only the partial days at the edges from raw calls; under any
other filter everything comes from raw calls (the aggregates carry no user).

Summing every user's days for the range is what costs: ~950k day rows for 90 days at 10M
events, 0.9 s. ``user_cost_ceiling`` (:mod:`exporters.rollup.user_ceilings`) bounds what
any range can have cost each user, so the range is summed only for the users with the
highest ceilings (twice as many as asked for). The last cost in that list is a floor: the
final list's last cost can only be higher, so only users whose ceiling reaches the floor
can be in it. Those not summed yet are summed in a second pass, unless there are more than
:data:`MAX_CANDIDATES` of them (short ranges, where ceilings say little): then every user is,
as for ranges of fewer than :data:`MIN_WHOLE_DAYS` whole days.
"""

from __future__ import annotations

import json
from typing import Final

from ..params import Query
from .activity import DAY, activity_table
from .events import Restriction, whole_days, whole_days_and_edges
from .reader import Rollup

__all__ = ["MAX_CANDIDATES", "MIN_WHOLE_DAYS", "costliest_users"]

#: Past this many candidates, summing every user is cheaper than proving the list.
MAX_CANDIDATES: Final = 1280
#: With fewer whole UTC days in the range, summing every user is cheaper: the partial days cost
#: the same either way, and the ceilings only spare day rows (at 10M events, ~10k users a day,
#: 7 days took 140 ms summed for everyone and 160 ms through the ceilings; 14 days 200 and 155).
MIN_WHOLE_DAYS: Final = 10


def costliest_users(rollup: Rollup, query: Query, *, limit: int = 20) -> list[dict[str, object]]:
    """``{"user_id", "cost_usd", "requests"}`` of the ``limit`` costliest users, costliest first
    (ties by user id): the same list as grouping every call of the range by user."""
    table = activity_table(query.filter_map)
    first_day, last_day = whole_days(query)
    if table is None or "user_id" in query.filter_map or last_day - first_day < MIN_WHOLE_DAYS * DAY:
        return _ranked(rollup, query, table, limit)
    first_count = 2 * limit
    with rollup.snapshot():
        ceilings = _ceilings(rollup, query, limit=max(first_count, MAX_CANDIDATES) + 1)
        summed = [user for user, _ in ceilings[:first_count]]
        first = _ranked(rollup, query, table, len(summed), among=summed)
        if len(ceilings) <= first_count:  # every user with a call was summed
            return first[:limit]
        if len(first) < limit:
            return _ranked(rollup, query, table, limit)
        # The list's last cost only rises as more users are summed: whoever ranks has a ceiling
        # at least this high.
        floor = _below(float(first[limit - 1]["cost_usd"]))  # type: ignore[arg-type]
        more = [user for user, ceiling in ceilings[first_count:] if ceiling >= floor]
        if not more:
            return first[:limit]
        if first_count + len(more) > MAX_CANDIDATES:
            return _ranked(rollup, query, table, limit)
        # ORDER BY cost_usd DESC, user_id: text compares as UTF-8 bytes, which order as code points
        both = first + _ranked(rollup, query, table, len(more), among=more)
        return sorted(both, key=lambda row: (-float(row["cost_usd"]), row["user_id"]))[:limit]  # type: ignore[arg-type]


def _below(cost: float) -> float:
    """A bound a little under ``cost``: a range's sum and a ceiling add the same costs in other
    orders, so a user's exact sum may exceed their ceiling by rounding."""
    return cost - abs(cost) * 1e-9 - 1e-12


def _ceilings(rollup: Rollup, query: Query, *, limit: int) -> list[tuple[str, float]]:
    """The highest ``limit`` ceilings under the team/project filters, with the calls the fold has
    not reached yet (a writer's deferred fold) added at their positive cost."""
    filters = sorted(query.filter_map.items())
    folded = "".join(f" AND {name} = ?" for name, _ in filters)
    unfolded = "".join(f" AND COALESCE({name}, '') = ?" for name, _ in filters)
    values = [value for _, value in filters]
    return rollup.execute(
        "SELECT user_id, TOTAL(ceiling) AS ceiling FROM ("
        f"SELECT user_id, ceiling_usd AS ceiling FROM user_cost_ceiling WHERE true{folded} "
        "UNION ALL SELECT user_id, MAX(cost_usd, 0) FROM model_calls "
        "WHERE id > COALESCE((SELECT last_id FROM fold_marks WHERE source = 'model_calls'), 0) "
        f"AND user_id IS NOT NULL{unfolded}"
        ") GROUP BY user_id ORDER BY ceiling DESC, user_id LIMIT ?",
        [*values, *values, limit],
    ).fetchall()


def _ranked(
    rollup: Rollup, query: Query, table: str | None, limit: int, among: list[str] | None = None
) -> list[dict[str, object]]:
    """The range summed per user (only the users ``among``, when given), costliest first."""
    # the day rows of a few users through the (user_id, day) index; their calls at the partial days
    # through the (ts, user_id, cost_usd) one (+: not the (user_id, ts) one, which reads each row)
    restrict = None
    if among is not None:
        users = " IN (SELECT value FROM json_each(?))"
        restrict = Restriction(
            days=f" AND user_id{users}", raw=f" AND +user_id{users}", params=(json.dumps(among),)
        )
    parts, params = whole_days_and_edges(
        query,
        day_select=(
            None
            if table is None
            else f"SELECT user_id, cost_usd, requests FROM {table} "
            "WHERE requests > 0 AND day >= ? AND day < ?"
        ),
        # a unary + keeps SQLite on the (user_id, day) index for a few users, off the team's every row
        day_filters=[
            (name if among is None else f"+{name}", value) for name, value in sorted(query.filter_map.items())
        ],
        raw_table="model_calls",
        raw_select=(
            "SELECT user_id, cost_usd, 1 AS requests FROM model_calls WHERE {where} AND user_id IS NOT NULL"
        ),
        restrict=restrict,
    )
    if not parts:
        return []
    return rollup.rows(
        "SELECT user_id, TOTAL(cost_usd) AS cost_usd, SUM(requests) AS requests "
        f"FROM ({' UNION ALL '.join(parts)}) "
        "GROUP BY user_id ORDER BY cost_usd DESC, user_id LIMIT ?",
        [*params, limit],
    )
