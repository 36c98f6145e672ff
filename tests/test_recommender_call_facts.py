"""The cheaper-model and router checks' call facts from ``call_band_day`` equal the raw-call computation."""

from __future__ import annotations

import pytest
from recommender_traffic import custom_query

from exporters.rollup import RollupWriter
from nexus_otel.events import FeedbackEvent, ModelCallEvent
from nexus_otel.pricing import get_default_table
from recommender.insights.call_facts import CallFacts, call_facts
from recommender.insights.recommend_quality import cheaper_model
from recommender.insights.recommend_router import router_threshold
from recommender.store.reader import Rollup
from tests.rollup_data import model_call, seeded_events, utc

DAY = 86400
START = utc("2026-03-02T00:00:00")
END = START + 8 * DAY


@pytest.fixture(scope="module")
def rollup(tmp_path_factory):
    path = tmp_path_factory.mktemp("call-facts") / "rollup.db"
    events = seeded_events(seed=17, start=START, days=8, calls=6000)
    # every seeded feedback rates one of the first calls: rate some of the rest too, and
    # routed calls of one feature enough to fill its bands
    calls = [e for e in events if isinstance(e, ModelCallEvent)]
    for i, c in enumerate(calls[1500::3]):
        events.append(FeedbackEvent(timestamp=c.timestamp + 60, request_id=c.request_id, score=(i % 10) / 10))
    writer = RollupWriter(path, retention_days=None)
    for i in range(0, len(events), 500):
        writer.write(events[i : i + 500])
    writer.close()
    return Rollup(path)


RANGES = [
    (START, END),  # whole days only
    (START + 0.3 * DAY, END - 0.6 * DAY),  # partial days at both edges
    (START + 2.5 * DAY, START + 3.25 * DAY),  # across one midnight: whole hours only
    (START + 0.3 * DAY + 1234.5, END - 0.6 * DAY - 77.25),  # partial hours at both edges
    (START + 4 * DAY + 100.0, START + 4 * DAY + 5 * 3600 + 7.0),  # inside one day: hours and raw
    (START + 5 * DAY + 60.0, START + 5 * DAY + 3000.0),  # inside one hour: raw only
    (END - 30 * DAY, END),  # before the data starts
]
FILTERS = [{}, {"team": "search"}, {"model": "gpt-4o-mini"}, {"feature": "chat", "provider": "openai"},
           {"project": "web"}, {"user_id": "user-3"}]  # fmt: skip


def _comparable(facts: CallFacts) -> dict[str, object]:
    def rows(items: list[dict], *keys: str) -> list[dict]:
        return sorted(items, key=lambda r: tuple(str(r[k]) for k in keys))

    return {
        "short_usage": rows(facts.short_usage, "feature", "model", "provider"),
        "short_feedback": rows(facts.short_feedback, "feature", "model", "provider"),
        "unrouted_calls": facts.unrouted_calls,
        "unrouted_feedback": facts.unrouted_feedback,
        "routed_usage": rows(facts.routed_usage, "feature", "routed_from", "band"),
        "routed_feedback": rows(facts.routed_feedback, "feature", "routed_from", "band"),
    }


def _assert_same(got: object, want: object, where: str = "") -> None:
    """Equal, floats to 1e-12 (sums added in another order); ints, strings and keys exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert sorted(got, key=str) == sorted(want, key=str), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), where
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), where
    else:
        assert got == want, where


@pytest.mark.parametrize(
    "filters", FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all"
)
@pytest.mark.parametrize("bounds", RANGES, ids=range(len(RANGES)))
def test_call_facts_from_band_rows_equal_the_raw_calls(rollup, bounds, filters):
    query = custom_query(*bounds, **filters)
    got, want = call_facts(rollup, query), call_facts(rollup, query, raw=True)
    _assert_same(_comparable(got), _comparable(want))
    if bounds[1] > START and bounds[1] - bounds[0] > DAY / 4 and not {"user_id", "project"} & set(filters):
        assert got.routed_usage
        assert got.short_usage


def test_a_confidence_outside_0_1_makes_the_raw_calls_decide(tmp_path):
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    odd = [
        model_call(START + 3600 * i, f"r{i}", feature="qa", model="gpt-4o-mini", routed=True, routed_from="gpt-4o",
                   router_confidence=c, cost_usd=0.01, baseline_cost_usd=0.03, priced=True)
        for i, c in enumerate((0.62, 1.5, -0.2, 0.91))
    ]  # fmt: skip
    writer.write(odd)
    writer.close()
    query = custom_query(START, START + DAY)
    facts = call_facts(Rollup(path), query)
    _assert_same(_comparable(facts), _comparable(call_facts(Rollup(path), query, raw=True)))
    assert sorted(r["band"] for r in facts.routed_usage) == [-0.2, 0.6, 0.9, 1.5]


@pytest.mark.parametrize("filters", [{}, {"team": "search"}, {"feature": "chat"}], ids=str)
def test_cheaper_model_and_router_checks_say_the_same(rollup, filters):
    query = custom_query(START + 0.3 * DAY, END - 0.2 * DAY, **filters)
    days, raw = call_facts(rollup, query), call_facts(rollup, query, raw=True)
    table, per_month = get_default_table(), 30 / query.range.days
    _assert_same(
        cheaper_model(rollup, query, table, per_month, facts=days),
        cheaper_model(rollup, query, table, per_month, facts=raw),
    )
    _assert_same(
        router_threshold(rollup, query, per_month, facts=days),
        router_threshold(rollup, query, per_month, facts=raw),
    )
