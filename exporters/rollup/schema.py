"""The rollup schema: what each table holds and how it is keyed.

Conventions
-----------
* Every time is UTC. Raw events store ``ts`` as Unix seconds (REAL, sub-second);
  aggregate tables store ``bucket_start`` as Unix seconds (INTEGER) aligned to
  the start of the minute, hour or UTC day; ``user_day.day`` is the UTC calendar
  date as ``YYYY-MM-DD``.
* Booleans are INTEGER 0/1. Costs are US dollars (REAL). Token counts follow
  :class:`nexus_otel.usage.Usage`: ``input_tokens`` includes cache reads and
  writes, ``output_tokens`` includes reasoning; the detailed counts are subsets,
  never to be added on top.
* In aggregate keys a missing feature, team or project is stored as ``''`` (a
  NULL would make every row its own key).

Raw event tables (pruned after the retention period)
----------------------------------------------------
``model_calls``
    One row per tracked model call, every :class:`nexus_otel.events.ModelCallEvent`
    field: ``id`` (rowid), ``request_id`` (UNIQUE: re-delivery of a request id is
    ignored everywhere; an event without one gets ``sha256:<digest of its
    content>``), ``ts``, ``user_id``, ``session_id``, ``team``, ``project``,
    ``feature``, ``model`` (requested), ``response_model``, ``provider``,
    ``operation``, ``server_address``, ``input_tokens``, ``output_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``,
    ``cost_usd`` (NULL when unpriced), ``baseline_cost_usd`` (what a routed call
    would have cost on its baseline model), ``priced``, ``latency_s``, ``ttft_s``
    (streams only), ``streamed``, ``outcome`` (success | error), ``error_type``,
    ``routed``, ``routed_from``, ``router_confidence``.
``feature_uses``
    ``id``, ``event_key``, ``ts``, ``user_id``, ``session_id``, ``team``,
    ``project``, ``feature``, ``count``.
``feedback``
    ``id``, ``event_key``, ``ts``, ``request_id`` (the rated call), ``user_id``,
    ``session_id``, ``team``, ``project``, ``feature``, ``model``, ``provider``,
    ``score`` (0..1), ``comment_length``.
``revenue``
    ``id``, ``event_key``, ``ts``, ``user_id``, ``session_id``, ``team``,
    ``project``, ``feature``, ``amount_usd``, ``plan``.
``sessions``
    ``id``, ``event_key``, ``ts``, ``user_id``, ``session_id``, ``team``,
    ``project``, ``feature``, ``state`` (started | ended), ``duration_s``.

``event_key`` (UNIQUE) is the SHA-256 of the event's content: these events carry
no id of their own, and it makes their re-delivery idempotent too.

Aggregates (kept forever; retention prunes only the raw tables)
-------------------------
``agg_minute``, ``agg_hour``, ``agg_day`` share one layout. Primary key
``(bucket_start, model, provider, operation, feature, team, project, outcome,
routed)``; columns ``requests``, ``errors``, ``input_tokens``,
``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
``reasoning_tokens``, ``cost_usd`` (priced calls), ``baseline_cost_usd``,
``priced_requests``, ``unpriced_requests``, ``latency_sum_s``,
``latency_count``, ``latency_le_00`` … ``latency_le_28`` (cumulative counts of
calls with ``latency_s <=`` :data:`LATENCY_BOUNDS_S` ``[i]``, i.e. a Prometheus
style histogram whose bounds grow by √2 from 10 ms to 163.84 s; every second
bound is one of the GenAI duration buckets; calls above the last bound are
``latency_count - latency_le_28``), ``ttft_sum_s``, ``ttft_count``. See
:func:`exporters.rollup.queries.latency_quantile`.

``user_day``
    Primary key ``(day, user_id)``; ``requests``, ``input_tokens``,
    ``output_tokens``, ``cost_usd`` (model calls), ``feature_uses`` (sum of
    feature-use counts), ``features`` (JSON array of the distinct features the
    user touched that day, through calls or feature uses), ``feature_count``,
    ``team`` and ``project`` (of the user's latest event that day),
    ``first_seen`` and ``last_seen`` (Unix seconds of the day's first and last
    event). Events without a user id do not appear here.
``user_day_features``
    Primary key ``(day, user_id, feature)``: the features a user touched that day.
``user_team_day``
    Primary key ``(team, day, project, user_id)`` (a missing team or project is
    ``''``); ``requests``, ``input_tokens``, ``output_tokens``, ``cost_usd``,
    ``feature_uses``, ``first_seen``, ``last_seen``: ``user_day`` split by the
    team and project of each event, so a user who worked for two teams on one day
    has a row in each (``user_day`` keeps only the last one). Team- and
    project-scoped user metrics read this instead of raw events. Added by
    migration 3, which fills it from the raw events kept at the time.
``user_team_day_features``
    Primary key ``(team, day, project, user_id, feature)``; ``first_seen``,
    ``last_seen`` of the user's events with that feature in that team and
    project that day (events without a feature do not appear).
``feature_use_day``
    Primary key ``(day, team, project, feature)``; ``uses``: the sum of the
    feature-use counts of that day (with or without a user; uses without a
    feature do not appear). Added by migration 3.
``call_band_hour``, ``call_band_day``, ``call_band_week``
    Primary key ``(bucket_start, team, feature, model, provider, routed, routed_from,
    band)`` (``WITHOUT ROWID``; hour, day and epoch-aligned 7-day buckets): calls with a feature,
    unrouted by prompt-size band (``input_tokens <= 2000``) and routed by 0.1-wide
    router-confidence band, with ``calls``, tokens, cost, ``priced``, baseline cost,
    ``min_confidence`` and the feedback on them (``feedback``, ``scored``,
    ``score_sum``). ``call_band_pending`` holds feedback whose call has not arrived. See
    :mod:`exporters.rollup.bands`. Added by migration 4 (the hour table by migration 10).

``user_ordinals``, ``active_users_day``, ``feature_users_day``
    A dense integer per user, and per (day, team, project[, feature]) the users active
    that day as a bitset of those integers (``WITHOUT ROWID``). See
    :mod:`exporters.rollup.user_sets`. Added by migration 6.
``team_hour``
    Primary key ``(bucket_start, team, project)`` (``WITHOUT ROWID``, hour buckets):
    ``requests``, ``errors``, ``input_tokens``, ``output_tokens``, ``priced_requests``,
    ``unpriced_requests``, ``cost_usd``: ``agg_hour`` summed over its other dimensions. See
    :mod:`exporters.rollup.team_hours`. Added by migration 6.
``agg_feature_{hour,day,week}``, ``agg_model_*``, ``agg_usage_*``
    Every aggregate sum per (bucket_start, team, project, feature) and per (bucket_start,
    team, project, model, provider, routed); the token and cost sums per (bucket_start,
    team, project, feature, model, provider, outcome); by hour, day and epoch-aligned
    week (``WITHOUT ROWID``). See :mod:`exporters.rollup.projections`. Added by migration 7.
``error_day``, ``feedback_day``
    Failed calls per (day, team, project, provider, error_type); feedback naming its model
    per (day, team, project, model): ``feedback``, ``scored``, ``score_sum``. ``WITHOUT
    ROWID``; see :mod:`exporters.rollup.event_days`. Added by migration 8.
``user_cost_ceiling``
    Primary key ``(team, project, user_id)`` (``WITHOUT ROWID``): ``ceiling_usd``, the sum of
    the positive parts of the user's call costs, which no time range of theirs exceeds. See
    :mod:`exporters.rollup.user_ceilings`. Added by migration 9, with a partial index of the
    calls whose cost is negative; migration 9 also widens ``model_calls``' ``(ts)`` index to
    ``(ts, user_id, cost_usd)``.

Bookkeeping
-----------
``_migrations``: ``version`` (primary key), ``name``, ``applied_at`` (ISO 8601 UTC).
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "AGG_DIMENSIONS",
    "AGG_TABLES",
    "CALL_ROW_EXPRESSIONS",
    "LAST_DATE_TS",
    "LATENCY_BOUNDS_S",
    "LATENCY_COLUMNS",
    "RAW_TABLES",
    "agg_columns",
    "agg_sum_columns",
]

#: Upper bounds (seconds) of the cumulative latency buckets: 0.01 * 2**(i/2).
LATENCY_BOUNDS_S: Final = tuple(round(0.01 * math.sqrt(2) ** i, 6) for i in range(29))
LATENCY_COLUMNS: Final = tuple(f"latency_le_{i:02d}" for i in range(len(LATENCY_BOUNDS_S)))
#: 9999-12-31T23:59:59Z, the last second SQLite's ``date()`` formats: the in-memory groupings
#: hand a time outside [0, LAST_DATE_TS] to the SQL grouping, where buckets and days may differ.
LAST_DATE_TS: Final = 253_402_300_799.0

#: Aggregate table -> bucket width in seconds.
AGG_TABLES: Final = {"agg_minute": 60, "agg_hour": 3600, "agg_day": 86400}
AGG_DIMENSIONS: Final = ("model", "provider", "operation", "feature", "team", "project", "outcome", "routed")

#: Raw event tables, pruned after the retention period.
RAW_TABLES: Final = ("model_calls", "feature_uses", "feedback", "revenue", "sessions")

_AGG_SUMS: Final = (
    ("requests", int),
    ("errors", int),
    ("input_tokens", int),
    ("output_tokens", int),
    ("cache_read_tokens", int),
    ("cache_write_tokens", int),
    ("reasoning_tokens", int),
    ("cost_usd", float),
    ("baseline_cost_usd", float),
    ("priced_requests", int),
    ("unpriced_requests", int),
    ("latency_sum_s", float),
    ("latency_count", int),
    *((column, int) for column in LATENCY_COLUMNS),
    ("ttft_sum_s", float),
    ("ttft_count", int),
)


#: What one raw ``model_calls`` row contributes to each aggregate column (SQL on that row).
#: The writer sums these per bucket (``exporters.rollup.aggregate``); the recommender
#: reads raw rows through them as one-call aggregate rows (``recommender.store.source``).
CALL_ROW_EXPRESSIONS: Final[dict[str, str]] = {
    "model": "model",
    "provider": "provider",
    "operation": "operation",
    "feature": "COALESCE(feature, '')",
    "team": "COALESCE(team, '')",
    "project": "COALESCE(project, '')",
    "outcome": "outcome",
    "routed": "routed",
    "requests": "1",
    "errors": "(outcome = 'error')",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "reasoning_tokens": "reasoning_tokens",
    "cost_usd": "COALESCE(cost_usd, 0.0)",
    "baseline_cost_usd": "COALESCE(baseline_cost_usd, 0.0)",
    "priced_requests": "(priced != 0)",
    "unpriced_requests": "(priced = 0)",
    "latency_sum_s": "latency_s",
    "latency_count": "1",
    **{
        column: f"(latency_s <= {bound!r})"
        for column, bound in zip(LATENCY_COLUMNS, LATENCY_BOUNDS_S, strict=True)
    },
    "ttft_sum_s": "COALESCE(ttft_s, 0.0)",
    "ttft_count": "(ttft_s IS NOT NULL)",
}


def agg_columns() -> dict[str, type]:
    """Column name -> type of an aggregate table, key columns first."""
    columns: dict[str, type] = {"bucket_start": int}
    columns.update({d: int if d == "routed" else str for d in AGG_DIMENSIONS})
    columns.update(_AGG_SUMS)
    return columns


def agg_sum_columns() -> tuple[str, ...]:
    """The additive (non-key) columns of an aggregate table."""
    return tuple(name for name, _ in _AGG_SUMS)
