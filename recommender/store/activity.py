"""The activity user figures count: rows of "user U was active on day D" under a query's filters.

A user is active at a time when they made a model call or used a product feature then. Without
filters (or filtering only by user) this reads the rollup's ``user_day`` table; with team, project
and user filters ``user_team_day`` (both kept forever); any other filter needs the raw events
(calls and feature uses carry feature; only calls carry model and provider), so those answers
reach back as far as retention. Without filters or with team and project filters only, whole days
come from the per-day user bitmaps instead (``day_sets``: OR and popcount), the rows only for a
range's partial edge days. :class:`ActivitySource` answers distinct users, (day, user) pairs,
first activity and feature users of any window; ``users`` and ``retention`` build figures on it.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

from ..params import Query
from .day_sets import SET_FILTERS, DaySets, day_name, popcount
from .reader import Rollup
from .user_calls import first_call_sql, user_calls_in_range

__all__ = [
    "DAY",
    "TEAM_DAY_FILTERS",
    "USER_DAY_FILTERS",
    "ActivityRow",
    "ActivitySource",
    "activity_table",
    "day_of",
]

DAY = 86400
_CALL_ONLY = {"model", "provider"}


def day_of(t: float) -> str:
    """The UTC day (``YYYY-MM-DD``) holding ``t``."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d")


#: One activity row: (UTC day, user, first and last event time in the row, feature or None).
ActivityRow = tuple[str, str, float, float, "str | None"]

#: Filters the per-user day tables can answer: ``user_day`` carries users only, ``user_team_day`` the
#: team and project of each event as well. Feature, model and provider filters need the raw events.
USER_DAY_FILTERS = frozenset({"user_id"})
TEAM_DAY_FILTERS = frozenset({"team", "project", "user_id"})


def activity_table(filters: dict[str, str]) -> str | None:
    """The per-user day table that answers activity under ``filters`` exactly; None: raw events."""
    if set(filters) <= USER_DAY_FILTERS:
        return "user_day"
    if set(filters) <= TEAM_DAY_FILTERS:
        return "user_team_day"
    return None


def _part_of_one_day(a: float, b: float) -> bool:
    """``[a, b)`` lies in one UTC day without covering it: a day row cannot say if the user was in it.

    A day row keeps only the first and last event. For a window over two or more days the
    edge days only need one of them (the events after ``a`` on the first day, before ``b`` on
    the last), which they answer exactly; inside one day a gap between them could hold the window.
    """
    first, last = math.floor(a / DAY), math.ceil(b / DAY) - 1
    return first == last and not (a == first * DAY and b == a + DAY)


@dataclass(frozen=True, slots=True)
class _Loaded:
    start: float
    end: float
    edges: frozenset[float]  # raw rows answer exactly only windows whose ends are among these
    rows: list[ActivityRow]  # in day order
    days: list[str]  # rows' days, for bisecting a window's days out of the rows


class ActivitySource:
    """Builds the SQL for "(user_id, ts) of activity in [a, b)" under a query's filters.

    Activity comes from ``user_day`` (no filter but the user), ``user_team_day`` (team,
    project and user filters) or the raw events (any other filter). :meth:`load` reads a
    range once; windows inside it are then answered from those rows with the same result
    as their own statement, so one request's DAU/WAU/MAU, active days, retention and
    feature users cost one read instead of one read each.
    """

    def __init__(self, rollup: Rollup, query: Query, *, raw: bool = False, sets: bool = True) -> None:
        self.rollup = rollup
        self.filters = query.filter_map
        # raw=True: the raw events whatever the filters (the reference the day tables must equal)
        self.table = None if raw else activity_table(self.filters)
        self.use_user_day = self.table == "user_day"
        self._loaded: _Loaded | None = None
        # whole days from the day bitmaps where they carry the filters (sets=False: the day rows only,
        # the reference the bitmaps must equal)
        self.sets = (
            DaySets(rollup, self.filters, self.table)
            if sets and self.table is not None and set(self.filters) <= SET_FILTERS
            else None
        )

    def _from_days(self, a: float, b: float) -> bool:
        """Whether ``[a, b)`` is answered from a day table (else from raw events)."""
        if self.table is None:
            return False
        # user_day has always answered part-day windows from its first/last events (it is also
        # kept past the raw events' retention); the team table must equal the raw answer it replaced
        return self.use_user_day or not _part_of_one_day(a, b)

    def _tables(self) -> list[str]:
        return ["model_calls"] if set(self.filters) & _CALL_ONLY else ["model_calls", "feature_uses"]

    def _raw(self, a: float, b: float, columns: str) -> tuple[str, list[object]]:
        parts, params = [], []
        for table in self._tables():
            if table == "model_calls" and "user_id" in self.filters:
                user_sql, user_params = user_calls_in_range(self.filters["user_id"], a, b)
                clauses = [user_sql, "user_id IS NOT NULL"]
                params.extend(user_params)
            else:
                clauses = ["ts >= ?", "ts < ?", "user_id IS NOT NULL"]
                params.extend((a, b))
            for name, value in sorted(self.filters.items()):
                clauses.append(f"{name} = ?")
                params.append(value)
            parts.append(f"SELECT {columns} FROM {table} WHERE {' AND '.join(clauses)}")
        return " UNION ALL ".join(parts), params

    def _days_where(self, a: float, b: float) -> tuple[str, list[object]]:
        """Rows of the day table with an event in ``[a, b)`` (a day's first and last event bracket them)."""
        sql = "day >= ? AND day <= ? AND last_seen >= ? AND first_seen < ?"
        params: list[object] = [day_of(a), day_of(b - 1e-6), a, b]
        for name, value in sorted(self.filters.items()):
            sql += f" AND {name} = ?"
            params.append(value)
        return sql, params

    def load(self, a: float, b: float, *, edges: tuple[float, ...] = ()) -> None:
        """Read the activity of ``[a, b)`` once for the windows asked next.

        From a day table any window inside ``[a, b)`` is exact (a row is in a window when
        its first and last events bracket it, as in the window's own statement; for
        ``user_team_day`` only windows not inside one day, the others read raw events).
        Raw events are reduced to distinct (day, user, feature, stretch between consecutive
        ``edges``), so a window is exact when it starts and ends on ``a``, ``b`` or an edge;
        other windows read the table again.
        """
        if b <= a:
            self._loaded = _Loaded(a, b, frozenset(), [], [])
            return
        cuts = sorted({e for e in edges if a < e < b})
        if self.table is not None:
            where, params = self._days_where(a, b)
            columns = "day, user_id, first_seen, last_seen, NULL"
            cursor = self.rollup.execute(
                f"SELECT {columns} FROM {self.table} WHERE {where} ORDER BY day", params
            )
            rows: list[ActivityRow] = cursor.fetchall()
        else:
            # DISTINCT, not GROUP BY: SQLite de-duplicates DISTINCT rows as they come (memory grows with
            # the ~100k distinct rows) but sorts every input row for a GROUP BY (millions: 3x slower)
            stretch = " + ".join(f"(ts >= {float(c)!r})" for c in cuts) or "0"
            inner, params = self._raw(a, b, "ts, user_id, feature")
            cursor = self.rollup.execute(
                f"SELECT DISTINCT CAST(ts / {DAY} AS INTEGER) AS d, user_id, feature, {stretch} AS k "
                f"FROM ({inner})",
                params,
            )
            starts = [a, *cuts]
            # a row stands for events of one day inside one stretch [starts[k], next edge): its time is
            # where that stretch and day overlap, which is on the same side of every edge as the events
            rows = sorted(
                (
                    (day_name(d), user, t, t, feature)
                    for d, user, feature, k in cursor
                    for t in (max(starts[k], d * DAY),)
                ),
                key=lambda r: r[0],
            )
        self._loaded = _Loaded(a, b, frozenset((a, b, *cuts)), rows, [r[0] for r in rows])

    def _window(self, a: float, b: float) -> list[ActivityRow] | None:
        """The loaded rows with activity in ``[a, b)``, or None when the loaded rows cannot say exactly."""
        got = self._loaded
        if got is None or a < got.start or b > got.end:
            return None
        days = self.table is not None
        if days and not self._from_days(a, b):
            return None
        if not days and (a not in got.edges or b not in got.edges):
            return None
        first_day, last_day = day_of(a), day_of(b - 1e-6)
        rows = got.rows[bisect.bisect_left(got.days, first_day) : bisect.bisect_right(got.days, last_day)]
        # a row of a day strictly inside the window is in it: only the two edge days need checking
        # (day tables: the day's first and last events bracket the window's edge; raw: a row lies
        # inside one stretch between edges, so it is wholly in or out)
        edge = (first_day, last_day)
        if days:
            return [r for r in rows if r[0] not in edge or (r[3] >= a and r[2] < b)]
        return [r for r in rows if r[0] not in edge or (r[2] >= a and r[3] < b)]

    def _distinct_sql(self, a: float, b: float, columns: str) -> tuple[str, list[object]]:
        """``SELECT DISTINCT columns`` of the activity in ``[a, b)``, from a day table or raw events."""
        if self._from_days(a, b):
            where, params = self._days_where(a, b)
            return f"SELECT DISTINCT {columns} FROM {self.table} WHERE {where}", params
        raw_columns = "date(ts, 'unixepoch') AS day, user_id" if "day" in columns else "user_id"
        inner, params = self._raw(a, b, raw_columns)
        return f"SELECT DISTINCT {columns} FROM ({inner})", params

    def count(self, a: float, b: float) -> int:
        """Distinct users active in ``[a, b)``."""
        if b <= a:
            return 0
        rows = self._window(a, b)
        if rows is not None:  # already read: no statement
            return len({r[1] for r in rows})
        if self.sets is not None:
            # the bitmaps answer what the day table answers (None: a part day under a team filter);
            # OR-ing ~2k blobs beats a DISTINCT over the (day, user) rows (30 days at 10M: 38 vs 180 ms)
            bits = self.sets.window(a, b)
            if bits is not None:
                return popcount(bits)
        sql, params = self._distinct_sql(a, b, "user_id")
        return int(self.rollup.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()[0])

    def users(self, a: float, b: float) -> set[str]:
        """The users active in ``[a, b)``."""
        if b <= a:
            return set()
        rows = self._window(a, b)
        if rows is not None:
            return {r[1] for r in rows}
        sql, params = self._distinct_sql(a, b, "user_id")
        return {r[0] for r in self.rollup.execute(sql, params)}

    def user_days(self, a: float, b: float) -> list[tuple[str, str]]:
        """Distinct (UTC day, user) pairs with activity in ``[a, b)``."""
        rows = self._window(a, b)
        if rows is not None and self.use_user_day:
            return [(r[0], r[1]) for r in rows]  # user_day's key: already distinct
        if rows is not None:
            return list({(r[0], r[1]) for r in rows})
        sql, params = self._distinct_sql(a, b, "day, user_id")
        return [(r[0], r[1]) for r in self.rollup.execute(sql, params)]

    def first_seen(self, users: set[str]) -> dict[str, float]:
        """Each user's first activity ever (under the filters)."""
        if not users:
            return {}
        out: dict[str, float] = {}
        conn = self.rollup.connection()
        others = sorted((name, v) for name, v in self.filters.items() if name != "user_id")
        clauses = "".join(f" AND {name} = ?" for name, _ in others)
        values = [v for _, v in others]
        if self.table is not None:
            # walks the (user_id, day) index from the user's first day to the first matching one (only that
            # day's rows are sorted by first_seen: user_team_day has one per team and project). A MIN(day)
            # subquery instead made SQLite scan the whole team's rows for every user: 5.3 s vs 0.09 s.
            order = "ORDER BY day LIMIT 1" if self.use_user_day else "ORDER BY day, first_seen LIMIT 1"
            sql = f"SELECT first_seen FROM {self.table} WHERE user_id = ?{clauses} {order}"
            for user in users:
                row = conn.execute(sql, (user, *values)).fetchone()
                if row is not None:
                    out[user] = float(row[0])
            return out
        for table in self._tables():
            if table == "model_calls":  # walks the user's hours in user_calls to the first match
                sql = first_call_sql([name for name, _ in others])
                args = lambda user: (user, user, *values, user, *values)  # noqa: E731
            else:  # walks the (user_id, ts) index from the user's first event to the first one that matches
                sql = f"SELECT ts FROM {table} WHERE user_id = ?{clauses} ORDER BY ts LIMIT 1"
                args = lambda user: (user, *values)  # noqa: E731
            for user in users:
                row = conn.execute(sql, args(user)).fetchone()
                if row is not None and row[0] is not None:
                    out[user] = min(out.get(user, float(row[0])), float(row[0]))
        return out

    def feature_users(self, a: float, b: float) -> dict[str, int]:
        """Feature -> distinct users who touched it (by a call or a feature use) in ``[a, b)``."""
        if self.sets is not None:
            counts = self.sets.feature_users(a, b)
            if counts is not None:
                return counts
        if self.table is None:
            rows = self._window(a, b)
            if rows is not None:
                users: dict[str, set[str]] = defaultdict(set)
                for r in rows:
                    if r[4] is not None:
                        users[r[4]].add(r[1])
                return {feature: len(who) for feature, who in users.items()}
        if self.use_user_day:
            sql, params = self._user_day_features(a, b)
        elif self.table is not None and self._from_days(a, b):
            # each (team, project, feature) row keeps its own first and last event: exact on edge days too
            where, params = self._days_where(a, b)
            sql = (
                "SELECT feature, COUNT(DISTINCT user_id) FROM user_team_day_features "
                f"WHERE {where} GROUP BY feature"
            )
        else:
            inner, params = self._raw(a, b, "feature, user_id")
            sql = (
                f"SELECT feature, COUNT(DISTINCT user_id) FROM ({inner}) "
                "WHERE feature IS NOT NULL GROUP BY feature"
            )
        return {r[0]: int(r[1]) for r in self.rollup.execute(sql, params)}

    def _user_day_features(self, a: float, b: float) -> tuple[str, list[object]]:
        # days strictly inside the window need no first/last check, so they are read from
        # user_day_features' own (day, user, feature) key alone; only the two edge days join user_day
        first_day, last_day = day_of(a), day_of(b - 1e-6)
        user = self.filters.get("user_id")
        only = " AND user_id = ?" if user else ""
        edge_only = " AND d.user_id = ?" if user else ""
        sql = (
            "SELECT feature, COUNT(DISTINCT user_id) FROM ("
            f"SELECT feature, user_id FROM user_day_features WHERE day > ? AND day < ?{only} UNION ALL "
            "SELECT f.feature, f.user_id FROM user_day d "
            "JOIN user_day_features f ON f.day = d.day AND f.user_id = d.user_id "
            f"WHERE d.day IN (?, ?) AND d.last_seen >= ? AND d.first_seen < ?{edge_only}"
            ") GROUP BY feature"
        )
        params: list[object] = [first_day, last_day, *([user] if user else []), first_day, last_day, a, b]
        params += [user] if user else []
        return sql, params
