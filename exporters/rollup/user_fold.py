"""Upsert a transaction's per-user activity into ``user_day``, ``user_team_day`` and their feature tables.

The input is the activity stage: one row per (UTC day, user, team, project,
feature) of the new events, with their sums and first/last times (grouped in
memory by ``prefold`` or read from SQL by ``aggregate``). Grouping those few
thousand rows further here, then upserting plain ``VALUES``, costs about half of
what ``INSERT … SELECT … GROUP BY`` from a temp table did: SQLite's join of two
grouped views for ``user_day`` alone took as long as its upserts.

Where a user worked for two teams on one day, ``user_day`` keeps the team and
project of the latest event (on a tie, the larger team and project, so the
answer does not depend on the order of the rows); a later batch replaces them
only with an event at least as late.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["USER_TEAM_DAY_CONFLICT", "USER_TEAM_DAY_FEATURES_CONFLICT", "fold_user_activity"]

_USER_DAY_FEATURES = "INSERT OR IGNORE INTO user_day_features (day, user_id, feature) VALUES (?, ?, ?)"

_USER_DAY = """
INSERT INTO user_day (day, user_id, requests, input_tokens, output_tokens, cost_usd, feature_uses,
                      feature_count, team, project, first_seen, last_seen)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
        (SELECT COUNT(*) FROM user_day_features f WHERE f.day = ?1 AND f.user_id = ?2), ?8, ?9, ?10, ?11)
ON CONFLICT (day, user_id) DO UPDATE SET
    requests = user_day.requests + excluded.requests,
    input_tokens = user_day.input_tokens + excluded.input_tokens,
    output_tokens = user_day.output_tokens + excluded.output_tokens,
    cost_usd = user_day.cost_usd + excluded.cost_usd,
    feature_uses = user_day.feature_uses + excluded.feature_uses,
    feature_count = excluded.feature_count,
    team = CASE WHEN excluded.last_seen >= user_day.last_seen THEN excluded.team ELSE user_day.team END,
    project = CASE WHEN excluded.last_seen >= user_day.last_seen
                   THEN excluded.project ELSE user_day.project END,
    first_seen = MIN(user_day.first_seen, excluded.first_seen),
    last_seen = MAX(user_day.last_seen, excluded.last_seen)
"""

#: How a user_team_day row meets the stored one; the migration-3 backfill (``aggregate``) uses it too.
USER_TEAM_DAY_CONFLICT = """ON CONFLICT (team, day, project, user_id) DO UPDATE SET
    requests = user_team_day.requests + excluded.requests,
    input_tokens = user_team_day.input_tokens + excluded.input_tokens,
    output_tokens = user_team_day.output_tokens + excluded.output_tokens,
    cost_usd = user_team_day.cost_usd + excluded.cost_usd,
    feature_uses = user_team_day.feature_uses + excluded.feature_uses,
    first_seen = MIN(user_team_day.first_seen, excluded.first_seen),
    last_seen = MAX(user_team_day.last_seen, excluded.last_seen)
"""
USER_TEAM_DAY_FEATURES_CONFLICT = """ON CONFLICT (team, day, project, user_id, feature) DO UPDATE SET
    first_seen = MIN(user_team_day_features.first_seen, excluded.first_seen),
    last_seen = MAX(user_team_day_features.last_seen, excluded.last_seen)
"""

_USER_TEAM_DAY = f"""
INSERT INTO user_team_day (day, team, project, user_id, requests, input_tokens, output_tokens, cost_usd,
                           feature_uses, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
{USER_TEAM_DAY_CONFLICT}"""

_USER_TEAM_DAY_FEATURES = f"""
INSERT INTO user_team_day_features (day, team, project, user_id, feature, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
{USER_TEAM_DAY_FEATURES_CONFLICT}"""


def fold_user_activity(conn: sqlite3.Connection, activity: Iterable[Sequence[Any]]) -> None:
    """Add activity stage rows ``(day, user_id, team, project, feature, requests, input_tokens,
    output_tokens, cost_usd, feature_uses, first_seen, last_seen)`` to the per-user tables."""
    days: dict[tuple[Any, ...], list[Any]] = {}
    team_days: dict[tuple[Any, ...], list[Any]] = {}
    team_features: dict[tuple[Any, ...], list[Any]] = {}
    features: dict[tuple[Any, ...], None] = {}
    for day, user, team, project, feature, requests, inputs, outputs, cost, uses, first, last in activity:
        team_key, project_key = team or "", project or ""
        sums = days.get((day, user))
        if sums is None:
            days[(day, user)] = [requests, inputs, outputs, cost, uses, first, last, team, project]
        else:
            _add(sums, (requests, inputs, outputs, cost, uses, first))
            if last > sums[6] or (
                last == sums[6] and (team_key, project_key) > (sums[7] or "", sums[8] or "")
            ):
                sums[6], sums[7], sums[8] = last, team, project
        key = (day, team_key, project_key, user)
        sums = team_days.get(key)
        if sums is None:
            team_days[key] = [requests, inputs, outputs, cost, uses, first, last]
        else:
            _add(sums, (requests, inputs, outputs, cost, uses, first))
            sums[6] = max(sums[6], last)
        if feature is None:
            continue
        features[(day, user, feature)] = None
        key = (day, team_key, project_key, user, feature)
        times = team_features.get(key)
        if times is None:
            team_features[key] = [first, last]
        else:
            times[0] = min(times[0], first)
            times[1] = max(times[1], last)
    if features:
        conn.executemany(_USER_DAY_FEATURES, features)
    if days:
        # columns: key, the five sums, team, project, first_seen, last_seen
        conn.executemany(_USER_DAY, [(*k, *s[:5], s[7], s[8], s[5], s[6]) for k, s in days.items()])
    if team_days:
        conn.executemany(_USER_TEAM_DAY, [(*k, *s) for k, s in team_days.items()])
    if team_features:
        conn.executemany(_USER_TEAM_DAY_FEATURES, [(*k, *s) for k, s in team_features.items()])


def _add(sums: list[Any], values: tuple[Any, ...]) -> None:
    """Add requests, input and output tokens, cost and feature uses; keep the earliest first_seen."""
    requests, inputs, outputs, cost, uses, first = values
    sums[0] += requests
    sums[1] += inputs
    sums[2] += outputs
    sums[3] += cost
    sums[4] += uses
    sums[5] = min(sums[5], first)
