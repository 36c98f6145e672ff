"""Raw rows inserted group by group without their None columns store exactly what one plain INSERT stores."""

from __future__ import annotations

import random
import sqlite3

import pytest

from exporters.rollup import binding, open_database
from exporters.rollup.migrations import migrate
from exporters.rollup.rows import columns_of, insert_sql, prepare_rows
from tests.rollup_data import seeded_events, utc

START = utc("2026-03-01T00:00:00")


def _calls(seed: int, count: int = 800) -> list[tuple]:
    return prepare_rows(seeded_events(seed=seed, start=START, days=1, calls=count)).by_table["model_calls"]


def _rollup(path) -> sqlite3.Connection:
    db = open_database(path)
    migrate(db)
    return db.conn


def _stored(conn: sqlite3.Connection) -> list[tuple]:
    columns = ", ".join(columns_of("model_calls"))
    return conn.execute(f"SELECT id, {columns} FROM model_calls ORDER BY id").fetchall()


def test_the_c_grouping_is_built_and_in_use() -> None:
    assert binding.accelerated()  # setup.py builds it wherever a C compiler is


@pytest.mark.parametrize("seed", range(3))
def test_grouped_inserts_store_the_same_rows_as_one_plain_insert(tmp_path, seed: int) -> None:
    rows = _calls(seed)
    assert any(v is None for r in rows for v in r)
    assert any(type(v) is bool for r in rows for v in r)
    grouped, plain = _rollup(tmp_path / "grouped.db"), _rollup(tmp_path / "plain.db")
    with grouped:
        ordered = binding.insert_rows(grouped, "model_calls", rows)
    with plain:
        plain.executemany(insert_sql("model_calls"), ordered)
    stored = _stored(grouped)
    # the rows in the returned order, one per row id, with the values a plain INSERT stores
    assert stored == _stored(plain)
    assert [r[1:] for r in stored] == [tuple(int(v) if type(v) is bool else v for v in r) for r in ordered]
    assert sorted(map(repr, ordered)) == sorted(map(repr, rows))
    # grouped by which columns are None: more than one group, each contiguous in row id order
    patterns = [tuple(v is None for v in r) for r in ordered]
    runs = [p for i, p in enumerate(patterns) if i == 0 or p != patterns[i - 1]]
    assert len(runs) == len(set(patterns)) > 1


def test_re_delivered_rows_are_ignored_as_by_one_plain_insert(tmp_path) -> None:
    rows = _calls(7, 300)
    conn = _rollup(tmp_path / "r.db")
    with conn:
        binding.insert_rows(conn, "model_calls", rows[:100])
    before = conn.total_changes
    with conn:
        binding.insert_rows(conn, "model_calls", rows)
    assert conn.total_changes - before == 200
    assert sorted(r[7] for r in _stored(conn)) == sorted(r[6] for r in rows)


def _odd(row: tuple, rng: random.Random) -> tuple:
    at = rng.randrange(len(row))
    value = rng.choice([None, True, False, 0, 1, 2.5, "x", b"b", 2**70, float("nan")])
    return (*row[:at], value, *row[at + 1 :])


@pytest.mark.parametrize("seed", range(4))
def test_the_c_grouping_equals_the_python_grouping_exactly(seed: int) -> None:
    rng = random.Random(seed)
    rows = _calls(seed, 300)
    width = len(columns_of("model_calls"))
    for _ in range(200):
        batch = [_odd(r, rng) if rng.random() < 0.2 else r for r in rows[: rng.randrange(0, 60)]]
        want = binding.compact_rows_python(batch, width=width)
        got = binding._accelerated.compact(batch, width=width)
        assert repr(got) == repr(want)
        assert want is not None


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([(1, 2)], "a row of the wrong width"),
        ([[1, 2, 3]], "a list, not a tuple"),
        ([tuple(None if i >> b & 1 else 1 for b in range(3)) for i in range(8)] * 10, "fine: 8 patterns"),
    ],
)
def test_rows_the_grouping_leaves_as_they_are(rows, reason) -> None:
    want = binding.compact_rows_python(rows, width=3)
    assert repr(binding._accelerated.compact(rows, width=3)) == repr(want)
    assert (want is None) == (not reason.startswith("fine")), reason


def test_more_patterns_than_groups_go_through_one_plain_insert(tmp_path) -> None:
    width = 9
    rows = [tuple(None if i >> b & 1 else b for b in range(width)) for i in range(binding.MAX_GROUPS + 1)]
    assert binding.compact_rows_python(rows, width=width) is None
    assert binding._accelerated.compact(rows, width=width) is None
    assert binding._accelerated.compact(rows[:-1], width=width) is not None
    with pytest.raises(ValueError, match="width"):
        binding._accelerated.compact(rows, width=64)
