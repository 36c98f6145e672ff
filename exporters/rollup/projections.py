"""Narrow aggregates: the minute/hour/day sums summed over fewer dimensions, by week, day, hour (and minute).

``agg_hour`` and ``agg_day`` key every bucket by all eight aggregate dimensions, so at
10M events a day holds ~2,900 rows and a 90-day answer grouped by model read ~290k of
them, although the model breakdown of a team has ~300 keys a day. A projection keeps the
same sums per (bucket, a subset of the dimensions) at its widths: epoch-aligned week (a
week starts on a Thursday 00:00 UTC, as ``call_band_week``), day and hour, some also
minute. A reader whose grouping and filters fall inside a projection's dimensions reads
whole weeks, then whole days, hours (and minutes) from it, and only the rest of the
range's edges from ``agg_minute`` and the raw calls (``recommender.store.source``).

Each fold groups the batch once into a stage per projection, at the projection's narrowest
width, and adds the stage to every width. The stage is filled from the fold's minute or hour
stage (the new calls grouped by minute or hour and every dimension), or from the stage of the
projection's ``parent`` (a wider projection it regroups) when that is narrow enough. Migration 7 fills
its projections from ``agg_hour`` and ``agg_day``. Integer sums are exactly those of the
full aggregates; a float sum (cost, latency) is the same numbers added in another order,
equal up to the last bits. ``WITHOUT ROWID``: a range of buckets is one contiguous read of
the primary key.

Migration 12 adds the projections an admin's answer reads: without team and project
(``*_global``) and by team and project alone (``owner``). Over every team, the model
breakdown has ~17 keys a week where ``agg_model_week`` has ~306, and prompt caching ~197
where ``agg_usage_week`` has ~2,900. Each regroups its parent's table of every width the
parent keeps, and ``agg_minute`` for its minutes.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from typing import Final

import sqlite_utils

from .schema import AGG_DIMENSIONS, agg_columns, agg_sum_columns

__all__ = [
    "MIGRATION_7_PROJECTIONS",
    "MIGRATION_12_PROJECTIONS",
    "PROJECTIONS",
    "PROJECTION_WIDTHS",
    "Projection",
    "backfill_projections",
    "create_projection_tables",
    "fold_projections",
    "merge_projection_sql",
    "projection_tables",
]

MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400
WEEK: Final = 7 * DAY
#: Bucket width -> table name suffix, widest first (the order a range is covered in).
PROJECTION_WIDTHS: Final = {WEEK: "week", DAY: "day", HOUR: "hour", MINUTE: "minute"}
_TYPES: Final = {int: "INTEGER", str: "TEXT", float: "REAL"}


@dataclass(frozen=True, slots=True)
class Projection:
    """The aggregate sums summed over every dimension but ``dimensions``."""

    name: str
    dimensions: tuple[str, ...]
    #: the sums kept (default: all of the aggregates'); fewer columns are faster to read
    sums: tuple[str, ...] = agg_sum_columns()
    #: a wider projection holding every dimension and sum of this one: this one regroups its rows
    parent: Projection | None = None
    #: bucket widths kept, widest first; minutes only where they are far fewer rows than ``agg_minute``'s
    widths: tuple[int, ...] = (WEEK, DAY, HOUR)

    def __post_init__(self) -> None:
        unknown = [d for d in self.dimensions if d not in AGG_DIMENSIONS]
        if unknown or not self.dimensions:
            raise ValueError(f"projection {self.name!r}: dimensions must be some of {AGG_DIMENSIONS}")
        if "requests" not in self.sums or set(self.sums) - set(agg_sum_columns()):
            raise ValueError(f"projection {self.name!r}: sums must include requests and be aggregate sums")
        parent = self.parent
        if parent is not None and not (
            set(self.dimensions) < set(parent.dimensions) and set(self.sums) <= set(parent.sums)
        ):
            raise ValueError(f"projection {self.name!r}: its parent must hold more dimensions and every sum")
        if not self.widths or list(self.widths) != [w for w in PROJECTION_WIDTHS if w in self.widths]:
            raise ValueError(
                f"projection {self.name!r}: widths must be some of {list(PROJECTION_WIDTHS)}, widest first"
            )

    def table(self, width: int) -> str:
        """The table holding this projection's ``width``-second buckets."""
        if width not in self.widths:
            raise ValueError(f"projection {self.name!r} keeps no {width}-second buckets")
        return f"agg_{self.name}_{PROJECTION_WIDTHS[width]}"

    @property
    def narrowest(self) -> int:
        return self.widths[-1]

    @property
    def key(self) -> tuple[str, ...]:
        return ("bucket_start", *self.dimensions)


_FEATURE = Projection("feature", ("team", "project", "feature"))
_MODEL = Projection("model", ("team", "project", "model", "provider", "routed"))
_USAGE = Projection(
    "usage",
    ("team", "project", "feature", "model", "provider", "outcome"),
    sums=(
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "baseline_cost_usd",
        "unpriced_requests",
    ),
)
#: ~10 to 20 keys a minute where ``agg_minute`` has ~200 at 10M events: the partial hours at a
#: range's edges come from their minutes
_WITH_MINUTES = (WEEK, DAY, HOUR, MINUTE)
_FEATURE_GLOBAL = Projection("feature_global", ("feature",), parent=_FEATURE, widths=_WITH_MINUTES)
_MODEL_GLOBAL = Projection(
    "model_global", ("model", "provider", "routed"), parent=_MODEL, widths=_WITH_MINUTES
)
_OWNER = Projection("owner", ("team", "project"), parent=_FEATURE, widths=_WITH_MINUTES)
_USAGE_GLOBAL = Projection(
    "usage_global", ("feature", "model", "provider", "outcome"), sums=_USAGE.sums, parent=_USAGE
)
#: The projections each migration creates, parents before the projections that regroup them
#: (the order they are folded and backfilled in).
MIGRATION_7_PROJECTIONS: Final = (_FEATURE, _MODEL, _USAGE)
MIGRATION_12_PROJECTIONS: Final = (_FEATURE_GLOBAL, _MODEL_GLOBAL, _OWNER, _USAGE_GLOBAL)
_FOLD_ORDER: Final = (*MIGRATION_7_PROJECTIONS, *MIGRATION_12_PROJECTIONS)
#: Fewest keys first: a reader takes the first that holds every dimension it groups or filters by
#: and every sum it adds. Keys a week at 10M events, over every team: ``feature_global`` ~10,
#: ``model_global`` ~17, ``owner`` ~18 (totals, breakdowns by feature, model, provider, team and
#: project, routing savings, latency quantiles); ``feature`` ~180 and ``model`` ~306 (the same
#: under a team or project filter); ``usage_global`` ~197 and ``usage`` ~2,900 (tokens and cost by
#: feature and model, split by outcome: prompt caching, each model's features), which is why the
#: usage projections keep only the token and cost sums.
PROJECTIONS: Final = (_FEATURE_GLOBAL, _MODEL_GLOBAL, _OWNER, _FEATURE, _USAGE_GLOBAL, _MODEL, _USAGE)
_FLOAT_SUMS: Final = frozenset(c for c, t in agg_columns().items() if t is float)


def projection_tables(projections: tuple[Projection, ...] = PROJECTIONS) -> list[str]:
    """The tables of ``projections`` (default: all), projection by projection, widest bucket first."""
    return [p.table(width) for p in projections for width in p.widths]


def _total(column: str) -> str:
    return f"TOTAL({column})" if column in _FLOAT_SUMS else f"SUM({column})"


def _grouped(projection: Projection, width: int, source: str) -> str:
    """``SELECT`` of ``source``'s rows (aggregate-shaped, narrower buckets) in ``width`` buckets."""
    key = projection.key
    select = ", ".join((f"(bucket_start / {width}) * {width}", *key[1:], *map(_total, projection.sums)))
    return f"SELECT {select} FROM {source} GROUP BY {', '.join(str(i + 1) for i in range(len(key)))}"


def _columns(projection: Projection, constraint: str = "") -> str:
    """Column definitions of the projection's rows (key, then sums)."""
    types = agg_columns()
    return ", ".join(f"{c} {_TYPES[types[c]]}{constraint}" for c in (*projection.key, *projection.sums))


def _upsert(projection: Projection, width: int, source: str) -> str:
    """Rows of ``source`` (aggregate-shaped, no wider buckets) grouped into the ``width`` table."""
    key = projection.key
    return (
        f"INSERT INTO {projection.table(width)} ({', '.join((*key, *projection.sums))})\n"
        f"{_grouped(projection, width, source)}\n"
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {merge_projection_sql(projection, width)}"
    )


def merge_projection_sql(projection: Projection, width: int) -> str:
    """The ``DO UPDATE SET`` list that adds an incoming row's sums to the stored row of a projection table."""
    table = projection.table(width)
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in projection.sums)


def create_projection_tables(db: sqlite_utils.Database, projections: tuple[Projection, ...]) -> None:
    """Create the tables of ``projections`` (migrations 7 and 12)."""
    for projection in projections:
        columns = _columns(projection, " NOT NULL")
        for width in projection.widths:
            db.execute(
                f"CREATE TABLE {projection.table(width)} ({columns}, "
                f"PRIMARY KEY ({', '.join(projection.key)})) WITHOUT ROWID"
            )


def _stage(projection: Projection) -> str:
    return f"_nexus_fold_{projection.name}_{PROJECTION_WIDTHS[projection.narrowest]}"


def _fold_source(projection: Projection, minute_stage: str, hour_stage: str) -> str:
    """What the fold groups into ``projection``'s stage: its parent's stage if it is narrow enough,
    else the fold's hour stage if the projection keeps no minutes, else its minute stage."""
    parent = projection.parent
    if parent is not None and parent.narrowest <= projection.narrowest:
        return f"temp.{_stage(parent)}"
    return hour_stage if projection.narrowest >= HOUR else minute_stage


@functools.cache
def _fold_sql(projection: Projection, source: str) -> tuple[str, ...]:
    """The fold's statements for one projection: ``source``'s rows grouped into its stage, then added.

    The stage holds the batch in the projection's narrowest buckets; the projections that
    regroup this one read it instead of the (wider) minute stage. It is created once per
    connection (``IF NOT EXISTS``) and emptied after each fold: a ``CREATE``/``DROP`` per fold
    would change the schema and make SQLite prepare every cached statement of the connection again.
    """
    stage = _stage(projection)
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({_columns(projection)})",
        f"INSERT INTO temp.{stage} {_grouped(projection, projection.narrowest, source)}",
        *(_upsert(projection, width, f"temp.{stage}") for width in projection.widths),
    )


_CLEAR_STAGES: Final = tuple(f"DELETE FROM temp.{_stage(p)}" for p in _FOLD_ORDER)


def fold_projections(conn: sqlite3.Connection, *, minute_stage: str, hour_stage: str) -> None:
    """Add the fold's staged groups to every projection (the stage tables: the new calls grouped
    by every aggregate dimension, by minute and by hour)."""
    for projection in _FOLD_ORDER:
        for sql in _fold_sql(projection, _fold_source(projection, minute_stage, hour_stage)):
            conn.execute(sql)
    for sql in _CLEAR_STAGES:
        conn.execute(sql)


def backfill_projections(conn: sqlite3.Connection, projections: tuple[Projection, ...]) -> None:
    """Fill ``projections`` with every call folded so far (migrations 7 and 12).

    A width the parent keeps is its parent's table of that width regrouped. The others read
    minutes from ``agg_minute``, hours from ``agg_hour``, and days and weeks from ``agg_day``,
    which holds the same sums (the aggregates are never pruned) in a tenth of the rows.
    """
    full = {MINUTE: "agg_minute", HOUR: "agg_hour", DAY: "agg_day", WEEK: "agg_day"}
    for projection in projections:
        for width in projection.widths:
            parent = projection.parent
            source = parent.table(width) if parent is not None and width in parent.widths else full[width]
            conn.execute(_upsert(projection, width, source))
