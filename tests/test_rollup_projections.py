"""Migrations 7 and 12's projections: folded per batch, backfilled, and read for any range exactly."""

from __future__ import annotations

import pytest
from recommender_traffic import custom_query

from exporters.rollup import RollupWriter
from exporters.rollup.projections import MIGRATION_12_PROJECTIONS, PROJECTION_WIDTHS, PROJECTIONS, Projection
from exporters.rollup.schema import AGG_DIMENSIONS, agg_sum_columns
from recommender.params import Query, TimeRange
from recommender.store.reader import Rollup
from recommender.store.source import source
from recommender.store.totals import grouped, series
from tests.rollup_data import (
    assert_rows_close,
    copy_rollup,
    model_call,
    query_rows,
    redo_migrations_from,
    seeded_events,
    utc,
)

#: a Monday: 17 days hold two whole epoch weeks (Thursday to Wednesday) and partial ones at both ends
START = utc("2026-01-26T07:30:00")
DAYS = 17
SUMS = agg_sum_columns()


def _totals(sums: tuple[str, ...]) -> str:
    return ", ".join(f"TOTAL({c})" if c.endswith(("_usd", "_s")) else f"SUM({c})" for c in sums)


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    path = tmp_path_factory.mktemp("projections") / "rollup.db"
    events = seeded_events(seed=23, start=START, days=DAYS, calls=3000)
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 400):
        writer.write(events[i : i + 400])
    # a re-delivery folds through the SQL grouping (not the C prefold): both fold paths fed the tables
    writer.write([*events[:40], model_call(START + 7200.5, "late", team="search", project="web")])
    writer.close()
    return path


def _table(path, table: str, key: tuple[str, ...], sums: tuple[str, ...]) -> list[tuple]:
    return query_rows(path, f"SELECT {', '.join((*key, *sums))} FROM {table} ORDER BY {', '.join(key)}")


def _regrouped(
    path, source_table: str, key: tuple[str, ...], sums: tuple[str, ...], width: int
) -> list[tuple]:
    dims = ", ".join(key[1:])
    return query_rows(
        path,
        f"SELECT (bucket_start / {width}) * {width} AS b, {dims}, {_totals(sums)} FROM {source_table} "
        f"GROUP BY b, {dims} ORDER BY b, {dims}",
    )


@pytest.mark.parametrize(
    ("projection", "width"),
    [(p, w) for p in PROJECTIONS for w in p.widths],
    ids=[f"{p.name}-{PROJECTION_WIDTHS[w]}" for p in PROJECTIONS for w in p.widths],
)
def test_each_projection_equals_the_full_aggregates_summed_over_the_dimensions_it_drops(
    path, projection, width
):
    got = _table(path, projection.table(width), projection.key, projection.sums)
    want = _regrouped(path, "agg_minute", projection.key, projection.sums, width)
    assert len(got) > (2 if width == 7 * 86400 else 30)
    assert_rows_close(got, want)
    # every call is in every width once: the request counts add up to the raw rows
    assert (
        sum(r[len(projection.key)] for r in got) == query_rows(path, "SELECT COUNT(*) FROM model_calls")[0][0]
    )


@pytest.mark.parametrize(
    ("version", "projections"), [(7, PROJECTIONS), (12, MIGRATION_12_PROJECTIONS)], ids=["7", "12"]
)
def test_the_migrations_backfill_what_the_fold_writes(path, tmp_path, version, projections):
    """Migration 7 again (with 12 after it) refills every projection; 12 alone its own."""
    copy = tmp_path / "copy.db"
    copy_rollup(path, copy)
    redo_migrations_from(copy, version)
    for projection in projections:
        for width in projection.widths:
            table = projection.table(width)
            key, sums = projection.key, projection.sums
            assert_rows_close(_table(copy, table, key, sums), _table(path, table, key, sums))


RANGES = [
    (START, START + DAYS * 86400),
    (START + 1234.5, START + 16 * 86400 + 7777.25),  # raw and minute edges around hours, days, weeks
    (utc("2026-01-29T00:00:00"), utc("2026-02-12T00:00:00")),  # exactly two epoch weeks
    (START + 5 * 3600, START + 9 * 3600 + 61),
]
#: (group by, filters, sums): every projection, with and without the scope filters
CASES = [
    (("model", "provider"), {}, SUMS),
    (("team", "project", "model", "provider", "routed"), {"team": "search"}, SUMS),
    ((), {"team": "support", "project": "web"}, SUMS),
    (("provider",), {"model": "gpt-4o-mini"}, SUMS),
    (("feature",), {}, SUMS),
    (("team", "feature"), {"project": "helpdesk"}, SUMS),
    (("feature", "model", "provider", "outcome"), {}, ("input_tokens", "cache_read_tokens")),
    (("model", "feature"), {"team": "search"}, ("requests",)),
    (("outcome",), {"feature": "chat", "provider": "openai"}, ("cost_usd", "errors", "output_tokens")),
]


def _raw_grouped(
    path, bounds, by: tuple[str, ...], filters: dict[str, str], sums: tuple[str, ...]
) -> dict[tuple, dict[str, float]]:
    """The same sums straight from the raw calls (the writer's per-call expressions)."""
    from exporters.rollup.schema import CALL_ROW_EXPRESSIONS as E

    sums = ("requests", *(c for c in sums if c != "requests"))
    totals = ", ".join(f"TOTAL({E[c]})" if c.endswith(("_usd", "_s")) else f"SUM({E[c]})" for c in sums)
    keys = [E[b] for b in by]
    clauses = "".join(f" AND {E[name]} = '{value}'" for name, value in sorted(filters.items()))
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    rows = query_rows(
        path,
        f"SELECT {', '.join((*keys, totals))} FROM model_calls "
        f"WHERE ts >= {bounds[0]!r} AND ts < {bounds[1]!r}{clauses}{group}",
    )
    return {tuple(r[: len(by)]): dict(zip(sums, r[len(by) :], strict=True)) for r in rows if r[len(by)]}


@pytest.mark.parametrize(("by", "filters", "sums"), CASES, ids=[f"{b}-{f}-{len(s)}" for b, f, s in CASES])
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_grouped_sums_from_a_projection_equal_the_raw_calls(path, bounds, by, filters, sums):
    tables = {s.table for s in source(*bounds, filters, columns=(*by, *sums)).segments}
    assert not tables & {"agg_hour", "agg_day"}, tables
    assert tables & {p.table(w) for p in PROJECTIONS for w in p.widths}
    query = custom_query(*bounds, **filters)
    got = {tuple(r[b] for b in by): r for r in grouped(Rollup(path), query, by, sums=sums)}
    want = _raw_grouped(path, bounds, by, filters, sums)
    assert got.keys() == want.keys()
    assert want
    for key, expected in want.items():
        for column, value in expected.items():
            assert got[key][column] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)


def test_whole_weeks_are_read_from_the_week_tables(path):
    bounds = RANGES[2]
    segments = source(*bounds, {}, columns=("model", "requests")).segments
    assert [(s.table, s.end - s.start) for s in segments] == [("agg_model_global_week", 14 * 86400)]
    # a daily series never reads weeks (its buckets are days)
    daily = source(*bounds, {}, max_width=86400, columns=("model", "requests")).segments
    assert {s.table for s in daily} == {"agg_model_global_day"}
    query = Query(TimeRange(*bounds, "custom"), ())
    days = series(Rollup(path), query, step=86400, by=("model",), sums=("requests",))
    assert len({r["t"] for r in days}) == 14


@pytest.mark.parametrize(
    ("by", "filters", "table"),
    [
        ((), {}, "agg_feature_global_week"),
        (("feature",), {}, "agg_feature_global_week"),
        (("model", "provider"), {}, "agg_model_global_week"),
        (("routed", "model"), {"provider": "openai"}, "agg_model_global_week"),
        (("team", "project"), {}, "agg_owner_week"),
        ((), {"team": "search"}, "agg_owner_week"),
        (("feature",), {"team": "search"}, "agg_feature_week"),
        (("model", "provider"), {"team": "search"}, "agg_model_week"),
        (("team", "model"), {}, "agg_model_week"),
        (("feature", "model", "outcome"), {}, "agg_usage_global_week"),
        (("feature", "model", "outcome"), {"project": "web"}, "agg_usage_week"),
    ],
)
def test_a_reader_takes_the_projection_with_the_fewest_keys_that_holds_its_dimensions(by, filters, table):
    sums = ("requests", "cost_usd")
    assert {s.table for s in source(*RANGES[2], filters, columns=(*by, *sums)).segments} == {table}


def test_the_admin_projections_have_fewer_keys_than_the_ones_they_regroup(path):
    for projection in PROJECTIONS:
        if projection.parent is None:
            continue
        for width in projection.widths:
            wider = projection.parent.table(width) if width in projection.parent.widths else "agg_minute"
            mine, parents = (
                query_rows(path, f"SELECT COUNT(*) FROM {table}")[0][0]
                for table in (projection.table(width), wider)
            )
            assert 0 < mine < parents, (projection.table(width), mine, parents)


def test_the_partial_hours_of_an_admin_answer_come_from_its_projections_minutes(path):
    tables = {
        s.table for s in source(*RANGES[1], {}, columns=("model", "provider", "latency_count")).segments
    }
    assert tables == {f"agg_model_global_{w}" for w in ("week", "day", "hour", "minute")} | {"model_calls"}
    # a projection without minutes reads the partial hours from agg_minute
    tables = {s.table for s in source(*RANGES[1], {"team": "search"}, columns=("model", "requests")).segments}
    assert "agg_minute" in tables


@pytest.mark.parametrize(
    ("by", "filters"),
    [(("operation",), {}), (("routed", "model"), {"feature": "chat"}), (("routed", "feature"), {})],
)
def test_a_dimension_no_projection_holds_reads_the_full_aggregates(path, by, filters):
    tables = {s.table for s in source(*RANGES[1], filters, columns=(*by, "requests")).segments}
    assert "agg_day" in tables
    assert not any(t.startswith(("agg_model_", "agg_feature_", "agg_usage_", "agg_owner_")) for t in tables)
    assert set(AGG_DIMENSIONS) >= set(by)


def test_a_sum_the_projection_does_not_keep_reads_a_wider_one(path):
    by = ("feature", "model")
    assert {s.table for s in source(*RANGES[2], {}, columns=(*by, "requests")).segments} == {
        "agg_usage_global_week"
    }
    tables = {s.table for s in source(*RANGES[2], {}, columns=(*by, "requests", "latency_count")).segments}
    assert tables == {"agg_day"}


def test_a_user_filter_reads_the_raw_calls(path):
    assert {
        s.table for s in source(*RANGES[1], {"user_id": "user-1"}, columns=("model", "requests")).segments
    } == {"model_calls"}


def test_a_projection_must_narrow_its_parent_and_keep_its_sums():
    parent = Projection("p", ("team", "model"), sums=("requests", "cost_usd"))
    assert Projection("c", ("model",), sums=("requests",), parent=parent).parent is parent
    with pytest.raises(ValueError, match="parent"):
        Projection("c", ("model", "provider"), sums=("requests",), parent=parent)
    with pytest.raises(ValueError, match="parent"):
        Projection("c", ("model",), parent=parent)  # every aggregate sum, the parent keeps two
    with pytest.raises(ValueError, match="parent"):
        Projection("c", ("team", "model"), sums=("requests",), parent=parent)
    with pytest.raises(ValueError, match="widths"):
        Projection("c", ("model",), widths=(3600, 86400))  # narrowest first
    with pytest.raises(ValueError, match="widths"):
        Projection("c", ("model",), widths=(86400, 1800))
    with pytest.raises(ValueError, match="no 60-second buckets"):
        Projection("c", ("model",)).table(60)
