"""``nexus-otel rollup``: migrate, inspect and prune the SQLite rollup."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

import click

__all__ = ["rollup"]

_DB_HELP = "Rollup file [default: $NEXUS_ROLLUP, else ./nexus-rollup.db]."


def _db_path(path: str | None) -> str:
    return path or os.environ.get("NEXUS_ROLLUP") or "nexus-rollup.db"


def _open(path: str, *, must_exist: bool) -> Any:
    from exporters.rollup import open_database

    if must_exist and not os.path.exists(path):
        raise click.ClickException(
            f"no rollup at {path} (run 'nexus-otel rollup migrate --db {path}' to create one)"
        )
    try:
        return open_database(path)
    except Exception as exc:
        raise click.ClickException(f"cannot open {path}: {exc}") from None


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@click.group(context_settings={"max_content_width": 100})
def rollup() -> None:
    """Manage the SQLite rollup that the collector and embedded mode write.

    \b
    migrate  create the file or bring its schema up to date
    stats    rows per table, time ranges, size, schema version
    prune    delete raw events past retention (aggregates are kept)
    """


@rollup.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help=_DB_HELP)
def migrate(db_path: str | None) -> None:
    """Apply pending schema migrations, each in its own transaction, and print them.

    Creates the file when it does not exist. Running it again is safe: applied
    versions are recorded in the _migrations table and skipped.
    """
    from exporters.rollup import migrate as apply_migrations
    from exporters.rollup import schema_version

    path = _db_path(db_path)
    db = _open(path, must_exist=False)
    try:
        applied = apply_migrations(db)
        version = schema_version(db)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close()
    for migration in applied:
        click.echo(f"applied {migration.version:04d} {migration.name}")
    click.echo(f"{path}: schema version {version}" + ("" if applied else " (up to date)"))


@rollup.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def stats(db_path: str | None, as_json: bool) -> None:
    """Print row counts per table, the time range each covers (UTC), file size and schema version."""
    from exporters.rollup import rollup_stats

    path = _db_path(db_path)
    db = _open(path, must_exist=True)
    try:
        result = rollup_stats(db, path)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"rollup:          {path}")
    click.echo(f"schema version:  {result.schema_version}")
    click.echo(f"size:            {result.size_bytes / 1e6:.2f} MB")
    click.echo(f"not yet folded:  {result.unfolded_rows:,} raw rows (a busy collector folds them within 2 s)")
    width = max(len(t) for t in result.rows) if result.rows else 5
    click.echo(f"\n{'table':<{width}}  {'rows':>12}  first (UTC)           last (UTC)")
    for table, count in result.rows.items():
        span = result.time_range.get(table)
        when = f"{_utc(span[0]):<20}  {_utc(span[1])}" if span else "-"
        click.echo(f"{table:<{width}}  {count:>12,}  {when}")


@rollup.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help=_DB_HELP)
@click.option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help="Delete raw events older than this, e.g. 30d, 12h, 2w (units s, m, h, d, w).",
)
def prune(db_path: str | None, older_than: str) -> None:
    """Delete raw events older than --older-than in one transaction.

    The minute/hour/day aggregates and per-user days are kept, so long-range
    totals stay intact; only per-event detail goes.
    """
    from exporters.rollup import parse_duration
    from exporters.rollup import prune as prune_rollup

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    path = _db_path(db_path)
    db = _open(path, must_exist=True)
    try:
        deleted = prune_rollup(db, older_than_s=seconds)
    finally:
        db.close()
    for table, count in deleted.items():
        click.echo(f"{table}: {count} deleted")
    click.echo(f"deleted {sum(deleted.values())} raw events older than {older_than}")
