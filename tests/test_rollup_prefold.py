"""Batches grouped in memory (every row new) and batches grouped in SQL (some re-delivered) fold alike."""

from __future__ import annotations

import json
import math
import random

import pytest

from exporters.rollup import AGG_TABLES, RollupWriter, band_grouping, open_database, prefold, user_calls
from exporters.rollup.rows import prepare_rows
from nexus_otel.events import FeatureUseEvent, ModelCallEvent
from tests.rollup_data import model_call, seeded_events, utc

START = utc("2026-01-30T22:00:00")  # two UTC days
TABLES = (
    *AGG_TABLES,
    "user_day",
    "user_day_features",
    "user_team_day",
    "user_team_day_features",
    "feature_use_day",
    "error_day",
)


def _tables(path) -> dict[str, list[tuple]]:
    db = open_database(path, readonly=True)
    try:
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}
    finally:
        db.close()


def _same(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> None:
    for table in TABLES:
        assert len(a[table]) == len(b[table]), table
        for x, y in zip(a[table], b[table], strict=True):
            for u, v in zip(x, y, strict=True):
                if isinstance(u, float) or isinstance(v, float):
                    assert math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-12), (table, x, y)
                else:
                    assert u == v, (table, x, y)


def _write(path, batches) -> None:
    writer = RollupWriter(path, retention_days=None)
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        writer.close()


def test_grouping_in_memory_and_in_sql_give_the_same_aggregates(tmp_path) -> None:
    events = seeded_events(seed=11, start=START, days=2, calls=3000)
    batches = [events[i : i + 700] for i in range(0, len(events), 700)]
    in_memory, in_sql = tmp_path / "memory.db", tmp_path / "sql.db"
    _write(in_memory, batches)
    # the first call of each batch is stored alone before its batch, so the batch holds a
    # re-delivery: the writer cannot tell its new rows from memory and groups them in SQL
    firsts = [[next(e for e in b if isinstance(e, ModelCallEvent))] for b in batches]
    _write(in_sql, [x for pair in zip(firsts, batches, strict=True) for x in pair])
    memory, sql = _tables(in_memory), _tables(in_sql)
    assert sum(r[9] for r in memory["agg_day"]) == sum(isinstance(e, ModelCallEvent) for e in events)
    _same(memory, sql)
    # user_calls: grouped from memory (in C) in one file, by SQL in the other, the same calls filed
    assert _filed(in_memory) == _filed(in_sql)
    assert len(_filed(in_memory)) == sum(
        isinstance(e, ModelCallEvent) and e.user_id is not None for e in events
    )


def _filed(path) -> list[tuple]:
    """Each filed call's day, user and time, from user_calls' groups, whose bounds must hold."""
    db = open_database(path, readonly=True)
    try:
        rows = db.execute(
            "SELECT u.day_start, u.user_id, c.ts, u.first_ts, u.last_ts FROM user_calls u, json_each(u.call_ids) j "
            "JOIN model_calls c ON c.id = j.value ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        db.close()
    assert all(day <= ts < day + 86400 and first <= ts <= last for day, _, ts, first, last in rows)
    return [row[:3] for row in rows]


def test_values_the_sql_treats_specially_still_fold_like_the_sql(tmp_path) -> None:
    """NaN costs (stored as NULL), calls before 1970, NULL latencies: the in-memory grouping steps aside."""
    odd = [
        [model_call(START, "nan", cost_usd=float("nan"), user_id="u")],
        [model_call(-30.5, "early", user_id="u"), model_call(START + 5, "late", user_id="u")],
        [model_call(START + 9, "inf", latency_s=float("inf"), user_id="v", feature="f")],
        [FeatureUseEvent(timestamp=START + 10, user_id="v", feature="g", count=2)],
    ]
    plain, redelivered = tmp_path / "plain.db", tmp_path / "redelivered.db"
    _write(plain, odd)
    _write(redelivered, [x for batch in odd for x in (batch[:1], batch)])
    _same(_tables(plain), _tables(redelivered))


def test_the_c_grouping_is_built_and_in_use() -> None:
    # setup.py builds them wherever a C compiler is (CI installs from scratch): fail loudly if not
    assert prefold.accelerated()
    assert band_grouping.accelerated()


def _odd(row: tuple, rng: random.Random, column: int | None = None) -> tuple:
    """A row with one value (at ``column``, else anywhere) the C grouping must either group as
    Python does or hand back."""
    column = rng.randrange(len(row)) if column is None else column
    value = rng.choice(
        [None, "", "x", 0, 1, -3, True, False, 2.5, -0.0, float("nan"), float("inf"), -1e308, 2**62, 2**70,
         -5.0, 1e11, 253_402_300_800.0, 86_399.999_999_999_99]
    )  # fmt: skip
    return (*row[:column], value, *row[column + 1 :])


def _group_c_all(calls: list, uses: list, *, first_call_id: int = 1):
    """The C grouping's minute, activity and user-call rows."""
    return prefold._accelerated.group(
        calls, uses, bounds=prefold.LATENCY_BOUNDS_S, width=prefold._WIDTH, last_ts=prefold._LAST_TS,
        day_of=prefold._day, first_call_id=first_call_id,
    )  # fmt: skip


def _group_c(calls: list, uses: list):
    """The C grouping's minute and activity rows, as ``group_rows_python`` gives them."""
    grouped = _group_c_all(calls, uses)
    return None if grouped is None else grouped[:2]


@pytest.mark.parametrize("seed", range(6))
def test_the_c_grouping_equals_the_python_grouping_exactly(seed: int) -> None:
    """Same groups in the same order, integer sums equal, float sums bit for bit (same order of
    additions); where a value is odd, C either agrees or hands the batch back to Python."""
    events = seeded_events(seed=seed, start=START, days=2, calls=1500)
    rows = prepare_rows(events).by_table
    calls, uses = rows["model_calls"], rows.get("feature_uses", [])
    grouped = _group_c(calls, uses)
    assert grouped is not None  # ordinary rows are grouped in C
    assert grouped == prefold.group_rows_python(calls, uses)
    assert [repr(r) for r in grouped[0]] == [repr(r) for r in prefold.group_rows_python(calls, uses)[0]]
    rng = random.Random(seed)
    handed_back = 0
    for _ in range(300):
        odd_calls = list(calls[:40])
        odd_uses = list(uses[:10])
        for _ in range(rng.randrange(1, 3)):
            target = odd_calls if rng.random() < 0.8 or not odd_uses else odd_uses
            at = rng.randrange(len(target))
            target[at] = _odd(target[at], rng)
        try:
            python = prefold.group_rows_python(odd_calls, odd_uses)
        except Exception as exc:  # e.g. a comparison Python refuses: C must refuse it too
            with pytest.raises(type(exc)):
                _group_c(odd_calls, odd_uses)
            continue
        c = _group_c(odd_calls, odd_uses)
        if c is None:
            handed_back += 1
        else:
            assert repr(c) == repr(python)
    assert 0 < handed_back < 300


def _bands_c(calls: list):
    return band_grouping._accelerated.group_bands(
        calls, hour=band_grouping.STAGE_WIDTH, short=band_grouping.SHORT_PROMPT_TOKENS,
        thresholds=band_grouping.CONFIDENCE_THRESHOLDS, out_of_range=band_grouping.OUT_OF_RANGE_BAND,
        last_ts=band_grouping._LAST_TS,
    )  # fmt: skip


#: Where the band grouping reads a row: ts, team, feature, model, provider, the three token
#: counts, cost, baseline, priced, routed, routed_from, confidence.
_BAND_COLUMNS = (0, 3, 5, 7, 9, 12, 13, 14, 17, 18, 19, 25, 26, 27)


@pytest.mark.parametrize("seed", range(6))
def test_the_c_band_grouping_equals_the_python_grouping_exactly(seed: int) -> None:
    """Same band rows in the same order, sums and a lone call's ``priced`` as Python keeps them;
    where a value is odd, C either agrees or hands the batch back to Python."""
    events = seeded_events(seed=seed, start=START, days=2, calls=1500)
    calls = prepare_rows(events).by_table["model_calls"]
    # every kind of call the stage keys: unrouted short and long prompts, routed in and out of range
    featured = [c for c in calls if c[5] is not None]
    edges = (-0.5, 1.0, 1.5, 0.0, *band_grouping.CONFIDENCE_THRESHOLDS)  # each band's lowest confidence too
    calls += [(*c[:25], True, "gpt-4o", v) for c, v in zip(featured, edges, strict=False)]
    grouped = _bands_c(calls)
    python = band_grouping.group_band_rows(calls)
    assert grouped is not None  # ordinary rows are grouped in C
    assert [repr(r) for r in grouped] == [repr(r) for r in python]
    assert {r[5] for r in grouped} == {0, 1}
    assert {r[7] for r in grouped} >= {0, 1, 10, 99}
    assert band_grouping.group_bands(calls) == python
    handed_back, agreed = _odd_batches(
        calls,
        random.Random(seed),
        size=60,
        columns=_BAND_COLUMNS,
        c=_bands_c,
        python=band_grouping.group_band_rows,
    )
    assert handed_back > 0
    assert agreed > 0


def _odd_batches(rows: list, rng: random.Random, *, size: int, columns, c, python) -> tuple[int, int]:
    """400 batches of ``rows[:size]`` with one or two odd values in ``columns``: C groups each as
    Python does (row for row, ``repr``), hands it back (None) or refuses what Python refuses.
    Returns how many C handed back and how many it grouped."""
    handed_back = agreed = 0
    for _ in range(400):
        odd_rows = list(rows[:size])
        for _ in range(rng.randrange(1, 3)):
            at = rng.randrange(len(odd_rows))
            odd_rows[at] = _odd(odd_rows[at], rng, rng.choice(columns))
        try:
            want = python(odd_rows)
        except Exception as exc:  # Python refuses the batch: C refuses it too or hands it back
            try:
                assert c(odd_rows) is None
            except type(exc):
                pass
            continue
        got = c(odd_rows)
        if got is None:
            handed_back += 1
        else:
            agreed += 1
            assert [repr(r) for r in got] == [repr(r) for r in want]
    return handed_back, agreed


@pytest.mark.parametrize("seed", range(4))
def test_the_c_user_call_grouping_equals_the_python_grouping_exactly(seed: int) -> None:
    """Same (day, user) groups in the same order with the same ids and bounds; where a time or
    user id is odd, C either agrees or hands the batch back to the SQL grouping."""
    events = seeded_events(seed=seed, start=START, days=2, calls=1500)
    calls = prepare_rows(events).by_table["model_calls"]
    grouped = _group_c_all(calls, [], first_call_id=41)
    python = user_calls.group_user_calls_python(calls, first_id=41)
    assert grouped is not None  # ordinary rows are grouped in C
    assert [repr(r) for r in grouped[2]] == [repr(r) for r in python]
    listed = sorted(i for row in grouped[2] for i in json.loads(row[5]))
    assert listed == [41 + n for n, c in enumerate(calls) if c[1] is not None]
    # ids of every digit count, up to int64's 19
    for first_id in (0, 9, 99_999, 10**18 - 3, 2**63 - 1 - len(calls)):
        want = user_calls.group_user_calls_python(calls, first_id=first_id)
        assert [repr(r) for r in _group_c_all(calls, [], first_call_id=first_id)[2]] == [
            repr(r) for r in want
        ]

    def c(rows: list):
        got = _group_c_all(rows, [], first_call_id=7)
        return None if got is None else got[2]

    handed_back, agreed = _odd_batches(
        calls, random.Random(seed), size=50, columns=(0, 1), c=c,
        python=lambda rows: user_calls.group_user_calls_python(rows, first_id=7),
    )  # fmt: skip
    assert handed_back > 0
    assert agreed > 0
