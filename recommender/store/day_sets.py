"""Distinct users over whole UTC days from the per-day bitmaps (rollup migration 6), edge days from rows.

``active_users_day`` holds each (day, team, project)'s users as a bitset of user ordinals,
``feature_users_day`` the same per feature (see ``exporters.rollup.user_sets``). The users
active in ``[a, b)`` are the OR of the bitmaps of the whole days inside it plus, for the
partial days at its edges, the users of the day table's rows there whose first and last
events bracket the window (``last_seen >= a AND first_seen < b``, exactly what
``activity.ActivitySource`` reads for those days), turned into ordinals by ``user_ordinals``
(kept in memory: :mod:`recommender.store.ordinals`).
A count is then a popcount instead of a read of every (day, user) row of the range.

Only filters the bitmaps carry can be answered here (team and project); the user filter,
and filters the day tables cannot answer, stay with :class:`activity.ActivitySource`. With
``user_team_day`` a window inside one day that does not cover it is not answered here
(:meth:`DaySets.window` returns None): the day rows cannot say whether a user was active
in it, and ``ActivitySource`` reads raw events for it.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from datetime import date, datetime, timezone

from exporters.rollup.user_sets import FEATURE_WEEK_TABLE, bitmap_int

from .reader import Rollup

__all__ = ["SET_FILTERS", "DaySets", "day_name", "popcount"]

DAY = 86400
#: The filters the bitmaps' keys carry.
SET_FILTERS = frozenset({"team", "project"})


def popcount(bits: int) -> int:
    """How many users a bitmap holds."""
    return bits.bit_count()


@functools.lru_cache(maxsize=4096)
def day_name(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * DAY, timezone.utc).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=4096)
def _day_number(day: str) -> int:
    """``YYYY-MM-DD`` -> days since 1970-01-01."""
    return (date.fromisoformat(day) - date(1970, 1, 1)).days


def _ordinal_bits(ordinals: list[int]) -> int:
    """One int with the given ordinals' bits set."""
    if not ordinals:
        return 0
    buf = bytearray(max(ordinals) // 8 + 1)
    for o in ordinals:
        buf[o >> 3] |= 1 << (o & 7)
    return int.from_bytes(buf, "little")


class DaySets:
    """The bitmaps of one request's scope: ``table`` is the day table of its edge days
    (``user_day`` without filters, ``user_team_day`` with team and project filters)."""

    def __init__(self, rollup: Rollup, filters: dict[str, str], table: str) -> None:
        if not set(filters) <= SET_FILTERS:
            raise ValueError(f"the day bitmaps cannot answer filters {sorted(set(filters) - SET_FILTERS)}")
        self.rollup = rollup
        self.filters = dict(sorted(filters.items()))
        self.table = table
        self._days: dict[int, int] | None = None  # day number -> OR of the scope's bitmaps that day
        self._edges: dict[tuple[int, float, float], int] = {}

    def _where(self, alias: str = "") -> tuple[str, list[object]]:
        prefix = f"{alias}." if alias else ""
        return "".join(f" AND {prefix}{name} = ?" for name in self.filters), list(self.filters.values())

    def _all_days(self) -> dict[int, int]:
        """Every day's users in scope, read once (all days: "active before" reaches back to the first)."""
        if self._days is None:
            clauses, params = self._where()
            days: dict[int, int] = defaultdict(int)
            for day, blob in self.rollup.execute(
                f"SELECT day, bitmap FROM active_users_day WHERE day >= ''{clauses}", params
            ):
                days[_day_number(day)] |= bitmap_int(blob)
            self._days = dict(days)
        return self._days

    def _edge(self, day: int, a: float, b: float) -> int:
        """Users of ``day``'s rows whose first and last events bracket ``[a, b)`` (cut to the day)."""
        a, b = max(a, day * DAY), min(b, (day + 1) * DAY)
        key = (day, a, b)
        bits = self._edges.get(key)
        if bits is None:
            clauses, params = self._where("d")
            rows = self.rollup.execute(
                f"SELECT d.user_id FROM {self.table} d "
                f"WHERE d.day = ? AND d.last_seen >= ? AND d.first_seen < ?{clauses}",
                [day_name(day), a, b, *params],
            )
            bits = _ordinal_bits(self.rollup.user_ordinals.of(self.rollup, (r[0] for r in rows)))
            self._edges[key] = bits
        return bits

    def answers(self, a: float, b: float) -> bool:
        """Whether :meth:`window` answers ``[a, b)`` as ``ActivitySource`` does from the day table."""
        if b <= a or self.table == "user_day":
            return True
        first, last = math.floor(a / DAY), math.ceil(b / DAY) - 1
        return not (first == last and not (a == first * DAY and b == a + DAY))

    def days(self, a: float, b: float) -> dict[int, int]:
        """Day number -> the users active on that day within ``[a, b)`` (days without users left out).

        A partial day is answered by its rows' first and last events whatever the table; where
        that is not the activity in the window (see :meth:`answers`) the caller decides whether
        it is what it asks (e.g. "first active before ``b``" needs only the first event).
        """
        out: dict[int, int] = {}
        if b <= a:
            return out
        days = self._all_days()
        first, last = math.floor(a / DAY), math.ceil(b / DAY) - 1
        for day in range(first, last + 1):
            whole = a <= day * DAY and (day + 1) * DAY <= b
            bits = days.get(day, 0) if whole else self._edge(day, a, b)
            if bits:
                out[day] = bits
        return out

    def window(self, a: float, b: float) -> int | None:
        """The users active in ``[a, b)``; None when only raw events can say (see :meth:`answers`)."""
        if not self.answers(a, b):
            return None
        bits = 0
        for day_bits in self.days(a, b).values():
            bits |= day_bits
        return bits

    def before(self, t: float) -> int:
        """The users with any activity in scope before ``t`` (whose first activity is before ``t``)."""
        days = self._all_days()
        bits = 0
        day = math.floor(t / DAY)
        for number, day_bits in days.items():
            if number < day:
                bits |= day_bits
        if t > day * DAY:
            bits |= self._edge(day, -math.inf, t)
        return bits

    def feature_users(self, a: float, b: float) -> dict[str, int] | None:
        """Feature -> distinct users who touched it in ``[a, b)``; None as for :meth:`window`.

        Whole days OR the feature bitmaps (whole epoch-aligned weeks of them from
        ``feature_users_week``). On a partial edge day ``user_day`` counts every feature
        of a user whose day's first and last events bracket the window (as ``ActivitySource`` reads
        it): that day's feature bitmaps AND the edge users of :meth:`window` (one read shared with
        the active-user count). ``user_team_day_features`` rows keep their own first and last events,
        so under a team or project filter the edge days read those rows.
        """
        if not self.answers(a, b):
            return None
        bits: dict[str, int] = defaultdict(int)
        first, last = math.floor(a / DAY), math.ceil(b / DAY) - 1
        whole_first, whole_last = math.ceil(a / DAY), math.floor(b / DAY) - 1
        edge_days = sorted({d for d in (first, last) if not whole_first <= d <= whole_last})
        by_bitmap = self.table == "user_day"
        lo, hi = (first, last) if by_bitmap else (whole_first, whole_last)
        edge_bits: dict[int, dict[str, int]] = {day: defaultdict(int) for day in edge_days}
        clauses, params = self._where()
        # whole epoch-aligned weeks among the whole days from the week bitmaps, the other days' own
        week_lo, week_hi = math.ceil(whole_first / 7) * 7, math.floor((whole_last + 1) / 7) * 7
        day_spans = [(lo, hi)]
        if week_lo < week_hi:
            day_spans = [(lo, week_lo - 1), (week_hi, hi)]
            for feature, blob in self.rollup.execute(
                f"SELECT feature, bitmap FROM {FEATURE_WEEK_TABLE} WHERE week >= ? AND week < ?{clauses}",
                [day_name(week_lo), day_name(week_hi), *params],
            ):
                bits[feature] |= bitmap_int(blob)
        for span_lo, span_hi in day_spans:
            if span_lo > span_hi:
                continue
            for day, feature, blob in self.rollup.execute(
                f"SELECT day, feature, bitmap FROM feature_users_day WHERE day >= ? AND day <= ?{clauses}",
                [day_name(span_lo), day_name(span_hi), *params],
            ):
                number = _day_number(day)
                if whole_first <= number <= whole_last:
                    bits[feature] |= bitmap_int(blob)
                else:
                    edge_bits[number][feature] |= bitmap_int(blob)
        for day in edge_days:
            if by_bitmap:
                users = self._edge(day, a, b)
                for feature, day_bits in edge_bits[day].items():
                    bits[feature] |= day_bits & users
            else:
                for feature, ordinals in self._edge_features(day, a, b).items():
                    bits[feature] |= _ordinal_bits(ordinals)
        return {feature: popcount(b) for feature, b in bits.items() if b}

    def _edge_features(self, day: int, a: float, b: float) -> dict[str, list[int]]:
        """The ``user_team_day_features`` rows of ``day`` in scope that bracket ``[a, b)``, as ordinals."""
        clauses, extra = self._where("f")
        sql = (
            "SELECT f.feature, f.user_id FROM user_team_day_features f "
            f"WHERE f.day = ? AND f.last_seen >= ? AND f.first_seen < ?{clauses}"
        )
        rows = self.rollup.execute(sql, [day_name(day), a, b, *extra]).fetchall()
        ordinals = self.rollup.user_ordinals.of(self.rollup, (user for _, user in rows))
        out: dict[str, list[int]] = defaultdict(list)
        for (feature, _), ordinal in zip(rows, ordinals, strict=True):
            out[feature].append(ordinal)
        return out
