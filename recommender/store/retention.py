"""Weekly retention cohorts: of the users first active in a week, how many were active k weeks later.

Weeks start on Monday 00:00 UTC. A cohort is the users whose first activity (under the query's
filters) falls in a week of the range; :func:`retention_cohorts` counts them from (day, user)
pairs and first-seen times, :func:`retention_cohorts_from_sets` from the day bitmaps
(``day_sets``) with the same answer.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from .activity import DAY
from .day_sets import DaySets, popcount

__all__ = ["WEEK", "retention_cohorts", "retention_cohorts_from_sets", "week_start"]

WEEK = 7 * DAY


def week_start(t: float) -> float:
    """Monday 00:00 UTC of the week holding ``t``."""
    d = datetime.fromtimestamp(t, timezone.utc)
    monday = (d - timedelta(days=d.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday.timestamp()


@functools.lru_cache(maxsize=4096)
def _week_of_day(day: str) -> float:
    # retention maps hundreds of thousands of (day, user) pairs onto weeks: once per day is enough
    return week_start(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


def retention_cohorts(
    pairs: list[tuple[str, str]], first: dict[str, float], start: float, end: float, max_weeks: int
) -> list[dict[str, object]]:
    """Cohorts of the users first active (``first``) in ``[start, end)``, from distinct (day, user) ``pairs``.

    Each cohort week lists, for k = 0 .. ``max_weeks`` while week k starts before ``end``, how many
    of its users were active in week k.
    """
    cohorts: dict[float, list[str]] = defaultdict(list)
    for user, t in first.items():
        if start <= t < end:
            cohorts[week_start(t)].append(user)
    # only the cohorts' (new) users' weeks are ever looked up
    members = {user for users in cohorts.values() for user in users}
    weeks_active: dict[str, set[float]] = defaultdict(set)
    for day, user in pairs:
        if user in members:
            weeks_active[user].add(_week_of_day(day))
    out = []
    for cohort_week in sorted(cohorts):
        users = cohorts[cohort_week]
        retained = []
        k = 0
        while k <= max_weeks and cohort_week + k * WEEK < end:
            week = cohort_week + k * WEEK
            active = sum(1 for u in users if week in weeks_active[u])
            retained.append({"week": k, "active": active, "ratio": active / len(users)})
            k += 1
        out.append(
            {
                "cohort_week": datetime.fromtimestamp(cohort_week, timezone.utc).date().isoformat(),
                "users": len(users),
                "retention": retained,
            }
        )
    return out


def retention_cohorts_from_sets(
    sets: DaySets, before: int, *, lo: float, start: float, end: float, max_weeks: int
) -> list[dict[str, object]]:
    """:func:`retention_cohorts` from bitmaps: a week's cohort, its users first active in it (from ``start``).

    ``lo`` (a Monday) to ``end`` is the stretch :func:`users.user_metrics` reads its (day, user) pairs from;
    a week's activity is the OR of its days there, the day holding ``end`` cut by the same window.
    """
    by_day = sets.days(lo, end)
    weeks: dict[float, int] = defaultdict(int)
    for day, bits in by_day.items():
        weeks[week_start(day * DAY)] |= bits
    out = []
    seen = before
    week = week_start(start)
    while week < end:
        # the users active in the week from the range's start: on a partial day at either end, those
        # whose first event there is inside the range, which is all "first active" asks (so this is
        # exact even where a window inside one day is not, under a team filter)
        first = 0
        for bits in sets.days(max(start, week), min(week + WEEK, end)).values():
            first |= bits
        cohort = first & ~seen
        seen |= first
        size = popcount(cohort)
        if size:
            retained = []
            k = 0
            while k <= max_weeks and week + k * WEEK < end:
                n = popcount(cohort & weeks.get(week + k * WEEK, 0))
                retained.append({"week": k, "active": n, "ratio": n / size})
                k += 1
            out.append(
                {
                    "cohort_week": datetime.fromtimestamp(week, timezone.utc).date().isoformat(),
                    "users": size,
                    "retention": retained,
                }
            )
        week += WEEK
    return out
