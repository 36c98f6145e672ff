"""The SQLite rollup: raw events, minute/hour/day aggregates and per-user days (see ``schema``).

``RollupWriter`` commits event batches (idempotent on request id);
``ProcessWriter`` does so in a committer process (the collector's direct mode);
``SpooledWriter`` acknowledges after an fsync'd spool append and a committer
process (``committer``) commits it; ``migrate``/``prune``/``rollup_stats`` back the ``nexus-otel
rollup`` command. Requires the ``collector`` extra (sqlite-utils).
"""

from __future__ import annotations

from .connection import open_database
from .migrations import MIGRATIONS, Migration, applied_migrations, migrate, schema_version
from .process_writer import ProcessWriter
from .queries import RollupStats, latency_quantile, rollup_stats, spend_usd
from .retention import parse_duration, prune
from .schema import AGG_DIMENSIONS, AGG_TABLES, LATENCY_BOUNDS_S, LATENCY_COLUMNS, RAW_TABLES
from .spool import EventSpool, SpooledWriter
from .writer import RollupWriter, WriteResult

__all__ = [
    "AGG_DIMENSIONS",
    "AGG_TABLES",
    "LATENCY_BOUNDS_S",
    "LATENCY_COLUMNS",
    "MIGRATIONS",
    "RAW_TABLES",
    "EventSpool",
    "Migration",
    "ProcessWriter",
    "RollupStats",
    "RollupWriter",
    "SpooledWriter",
    "WriteResult",
    "applied_migrations",
    "latency_quantile",
    "migrate",
    "open_database",
    "parse_duration",
    "prune",
    "rollup_stats",
    "schema_version",
    "spend_usd",
]
