"""Who is active: DAU/WAU/MAU, new vs returning, churn and retention cohorts (``/api/analytics``'s users).

Windows: DAU, WAU and MAU are the trailing 1, 7 and 30 days ending at the range's end; a user is
new when first active (under the filters) in the range, churned when active in the previous range
and not in this one. The activity comes from :class:`activity.ActivitySource` (day tables or raw
events, see :mod:`.activity`); without filters or with team and project filters only the day
bitmaps (``day_sets``) answer every figure instead, set by set. Cohorts: :mod:`.retention`.

The activity source and the week helpers are re-exported: callers import them from here.
"""

from __future__ import annotations

from collections import defaultdict

from ..params import Query
from .activity import DAY, TEAM_DAY_FILTERS, ActivityRow, ActivitySource, activity_table, day_of
from .day_sets import DaySets, day_name, popcount
from .reader import Rollup
from .retention import WEEK, retention_cohorts, retention_cohorts_from_sets, week_start

__all__ = [
    "DAY",
    "TEAM_DAY_FILTERS",
    "WEEK",
    "ActivityRow",
    "ActivitySource",
    "activity_table",
    "day_of",
    "user_metrics",
    "week_start",
]


def user_metrics(
    rollup: Rollup, query: Query, *, max_weeks: int = 12, source: ActivitySource | None = None
) -> dict[str, object]:
    """The user section of ``/api/analytics`` (``source``: share its loaded activity with the caller)."""
    src = ActivitySource(rollup, query) if source is None else source
    if src.sets is not None:
        answer = _user_metrics_from_sets(src.sets, query, max_weeks)
        if answer is not None:
            return answer
    start, end = query.range.start, query.range.end
    # retention looks at activity from the first cohort week on, even if the range starts mid-week
    lo = min(start, week_start(start))
    src.load(lo, end, edges=(start, end - DAY, end - 7 * DAY, end - 30 * DAY))
    dau, wau, mau = (src.count(end - days * DAY, end) for days in (1, 7, 30))
    pairs = src.user_days(lo, end)
    in_range = src.user_days(start, end)
    active = {user for _, user in in_range}
    per_day: dict[str, int] = defaultdict(int)
    for day, _ in in_range:
        per_day[day] += 1
    days = max(query.range.days, 1e-9)
    avg_dau = len(in_range) / max(days, 1.0)
    first = src.first_seen(active)
    new = {u for u, t in first.items() if t >= start}
    previous = query.range.previous()
    previously_active = src.users(previous.start, previous.end)
    churned = previously_active - active
    return {
        "dau": dau,
        "wau": wau,
        "mau": mau,
        "active_users": len(active),
        "avg_daily_active_users": round(avg_dau, 3),
        "stickiness_dau_mau": round(dau / mau, 4) if mau else 0.0,
        "new_users": len(new),
        "returning_users": len(active - new),
        "previous_active_users": len(previously_active),
        "churned_users": len(churned),
        "churn_rate": round(len(churned) / len(previously_active), 4) if previously_active else 0.0,
        "daily_active_users": [{"day": day, "users": n} for day, n in sorted(per_day.items())],
        "retention_cohorts": retention_cohorts(pairs, first, start, end, max_weeks),
    }


def _user_metrics_from_sets(sets: DaySets, query: Query, max_weeks: int) -> dict[str, object] | None:
    """:func:`user_metrics` from the day bitmaps: the same figures, set by set instead of row by row.

    None when a window it needs lies inside one day without covering it under a team or project
    filter (only raw events answer that; the caller then computes as before).
    """
    start, end = query.range.start, query.range.end
    previous = query.range.previous()
    lo = min(start, week_start(start))
    windows = [(end - days * DAY, end) for days in (1, 7, 30)]
    windows += [(start, end), (previous.start, previous.end), (lo, end)]
    if not all(sets.answers(a, b) for a, b in windows):
        return None
    dau, wau, mau = (popcount(sets.window(a, b) or 0) for a, b in windows[:3])
    per_day = sets.days(start, end)
    active = 0
    for bits in per_day.values():
        active |= bits
    active_days = sum(popcount(bits) for bits in per_day.values())
    days = max(query.range.days, 1e-9)
    avg_dau = active_days / max(days, 1.0)
    # a user is new when active in the range with no activity (under the filters) before it
    before = sets.before(start)
    new = popcount(active & ~before)
    previously_active = sets.window(previous.start, previous.end) or 0
    churned = previously_active & ~active
    n_previous, n_active = popcount(previously_active), popcount(active)
    return {
        "dau": dau,
        "wau": wau,
        "mau": mau,
        "active_users": n_active,
        "avg_daily_active_users": round(avg_dau, 3),
        "stickiness_dau_mau": round(dau / mau, 4) if mau else 0.0,
        "new_users": new,
        "returning_users": n_active - new,
        "previous_active_users": n_previous,
        "churned_users": popcount(churned),
        "churn_rate": round(popcount(churned) / n_previous, 4) if n_previous else 0.0,
        "daily_active_users": [
            {"day": day_name(day), "users": popcount(bits)} for day, bits in sorted(per_day.items())
        ],
        "retention_cohorts": retention_cohorts_from_sets(
            sets, before, lo=lo, start=start, end=end, max_weeks=max_weeks
        ),
    }
