"""Costing: every token priced once, Decimal rules pinned, tiers, dates, names, the default table."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest

from nexus_otel import semconv
from nexus_otel.pricing import (
    COST_QUANTUM,
    PriceTable,
    get_default_table,
    parse_prices,
    reset_default_table,
)
from nexus_otel.usage import Usage


@pytest.fixture(scope="module")
def builtin() -> PriceTable:
    return PriceTable.load()


def _table(yaml_text: str) -> PriceTable:
    return PriceTable(parse_prices(yaml_text))


def test_openai_shape_cached_tokens_inside_prompt_tokens_are_priced_once(builtin):
    # Chat Completions usage: prompt_tokens=1234 with prompt_tokens_details.cached_tokens=1024,
    # completion_tokens=567. gpt-4o-mini: input 0.15, cached 0.075, output 0.60 per 1M.
    usage = Usage(input_tokens=1234, cache_read_tokens=1024, output_tokens=567)
    cost = builtin.cost(provider="openai", model="gpt-4o-mini-2024-07-18", usage=usage)
    assert cost.input == Decimal("0.0000315000")  # (1234 - 1024) x 0.15 / 1M
    assert cost.cache_read == Decimal("0.0000768000")  # 1024 x 0.075 / 1M
    assert cost.output == Decimal("0.0003402000")  # 567 x 0.60 / 1M
    assert cost.cache_write == cost.reasoning == Decimal(0)
    assert cost.total == Decimal("0.0004485000")


def test_openai_shape_reasoning_tokens_inside_completion_tokens_are_priced_once(builtin):
    # o3 after its 2025-06-10 price cut (2.00 / cached 0.50 / 8.00): prompt_tokens=12000 of which
    # 8000 cached; completion_tokens=3000 of which reasoning_tokens=2000.
    usage = Usage(input_tokens=12_000, output_tokens=3_000, cache_read_tokens=8_000, reasoning_tokens=2_000)
    cost = builtin.cost(provider="openai", model="o3", usage=usage, at=date(2025, 7, 1))
    assert cost.input == Decimal("0.0080000000")  # 4,000 uncached x 2.00
    assert cost.cache_read == Decimal("0.0040000000")  # 8,000 x 0.50
    assert cost.output == Decimal("0.0080000000")  # 1,000 visible x 8.00
    assert cost.reasoning == Decimal("0.0160000000")  # 2,000 x 8.00 (reasoning bills as output)
    assert cost.total == Decimal("0.0360000000")
    # The common peer bug: charging prompt_tokens at full price plus the cached tokens again,
    # and completion_tokens plus reasoning_tokens.
    double_counted = (12_000 * Decimal(2) + 8_000 * Decimal("0.5") + 5_000 * Decimal(8)) / 1_000_000
    assert double_counted == Decimal("0.068")
    assert cost.total != double_counted


def test_anthropic_shape_cache_reads_and_writes_reported_apart_are_priced_once(builtin):
    # Messages usage: input_tokens=500 *apart from* cache_read_input_tokens=20000 and
    # cache_creation 5m=3000 / 1h=1000. Sonnet 4.5: 3.00 / read 0.30 / write 3.75 (5m), 6.00 (1h).
    usage = Usage.from_parts(
        uncached_input_tokens=500,
        cache_read_tokens=20_000,
        cache_write_5m_tokens=3_000,
        cache_write_1h_tokens=1_000,
        output_tokens=800,
    )
    assert usage.input_tokens == 24_500
    cost = builtin.cost(provider="anthropic", model="claude-sonnet-4-5-20250929", usage=usage)
    assert cost.input == Decimal("0.0015000000")  # 500 x 3.00
    assert cost.cache_read == Decimal("0.0060000000")  # 20,000 x 0.30
    assert cost.cache_write == Decimal("0.0172500000")  # 3,000 x 3.75 + 1,000 x 6.00
    assert cost.output == Decimal("0.0120000000")  # 800 x 15.00
    assert cost.total == Decimal("0.0367500000")


def test_as_floats_is_keyed_by_the_cost_types_of_the_metric_contract(builtin):
    usage = Usage(input_tokens=1000, cache_read_tokens=200, output_tokens=300, reasoning_tokens=100)
    cost = builtin.cost(provider="openai", model="o4-mini", usage=usage)
    floats = cost.as_floats()
    assert tuple(floats) == semconv.COST_TYPES
    assert floats == {t: float(getattr(cost, t)) for t in semconv.COST_TYPES}
    assert sum(getattr(cost, t) for t in semconv.COST_TYPES) == cost.total


def test_decimal_rules_exact_text_half_even_per_component_and_total_of_rounded_parts():
    assert Decimal("1e-10") == COST_QUANTUM
    # 0.1 has no exact float; read from its text it prices 3 tokens at exactly 3e-7.
    exact = _table(
        "models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 0.1, output: 0.7}\n"
    )
    c = exact.cost(provider="p", model="m", usage=Usage(input_tokens=3, output_tokens=3))
    assert (c.input, c.output) == (Decimal("3E-7"), Decimal("0.0000021"))
    tiny = _table(
        "models:\n  - {provider: p, model: m, effective_from: 2024-01-01,"
        " input: 0.000015, output: 0.000025, cache_read: 0.000035}\n"
    )
    usage = Usage(input_tokens=10, cache_read_tokens=5, output_tokens=5)
    c = tiny.cost(provider="p", model="m", usage=usage)
    assert c.input == Decimal("1E-10")  # 5 x 0.000015 / 1M = 0.75e-10 -> 1e-10
    assert c.output == Decimal("1E-10")  # 1.25e-10 -> 1e-10 (a tie below .5 rounds down either way)
    assert c.cache_read == Decimal("2E-10")  # 1.75e-10 -> 2e-10
    tie = _table(
        "models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 0.00005, output: 0.00015}\n"
    )
    c = tie.cost(provider="p", model="m", usage=Usage(input_tokens=5, output_tokens=5))
    assert c.input == Decimal("2E-10")  # 2.5e-10: exact tie -> even neighbour 2e-10
    assert c.output == Decimal("8E-10")  # 7.5e-10: exact tie -> even neighbour 8e-10
    assert c.total == Decimal("1.0E-9")
    # total is the sum of the rounded components: 0.6e-10 + 1.2e-10 + 0.6e-10 each round to 1e-10,
    # so total is 3e-10, although the exact 2.4e-10 would round to 2e-10.
    three = _table(
        "models:\n  - {provider: p, model: m, effective_from: 2024-01-01,"
        " input: 0.00006, cache_read: 0.00012, output: 0.00006}\n"
    )
    c = three.cost(provider="p", model="m", usage=Usage(input_tokens=2, cache_read_tokens=1, output_tokens=1))
    assert (c.input, c.cache_read, c.output) == (Decimal("1E-10"), Decimal("1E-10"), Decimal("1E-10"))
    assert c.total == Decimal("3E-10")


def test_cost_does_not_depend_on_the_callers_decimal_context(builtin):
    usage = Usage(input_tokens=123_456_789, output_tokens=987_654)
    expected = builtin.cost(provider="openai", model="gpt-4.1", usage=usage)
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = "ROUND_DOWN"
        assert builtin.cost(provider="openai", model="gpt-4.1", usage=usage) == expected
    assert expected.input == Decimal("246.9135780000")  # 123,456,789 x 2.00 / 1M


def test_long_context_tier_prices_the_whole_request_once_input_exceeds_the_threshold(builtin):
    def cost(input_tokens: int):
        usage = Usage(input_tokens=input_tokens, cache_read_tokens=100_000, output_tokens=1_000)
        return builtin.cost(provider="gcp.gemini", model="gemini-2.5-pro", usage=usage)

    at_threshold, above = cost(200_000), cost(200_001)
    assert at_threshold.input == Decimal("0.1250000000")  # 100,000 uncached x 1.25
    assert at_threshold.cache_read == Decimal("0.0125000000")  # 100,000 x 0.125
    assert at_threshold.output == Decimal("0.0100000000")  # 1,000 x 10.00
    assert above.input == Decimal("0.2500025000")  # 100,001 x 2.50
    assert above.cache_read == Decimal("0.0250000000")  # 100,000 x 0.25
    assert above.output == Decimal("0.0150000000")  # 1,000 x 15.00
    # Anthropic's 1M-context Sonnet: the threshold counts cached input too.
    sonnet = Usage.from_parts(uncached_input_tokens=1_000, cache_read_tokens=199_001, output_tokens=10)
    c = builtin.cost(provider="anthropic", model="claude-sonnet-4-0", usage=sonnet)
    assert (c.input, c.cache_read) == (Decimal("0.0060000000"), Decimal("0.1194006000"))  # 6.00, 0.60


def test_effective_from_picks_the_latest_entry_on_or_before_the_call_day(builtin):
    usage = Usage(input_tokens=1_000_000)
    o3 = {
        day: builtin.cost(provider="openai", model="o3", usage=usage, at=day)
        for day in (date(2025, 4, 15), date(2025, 4, 16), date(2025, 6, 9), date(2025, 6, 10))
    }
    assert o3[date(2025, 4, 15)] is None  # before launch: no price, never a guess
    assert o3[date(2025, 4, 16)].total == Decimal("10.00")
    assert o3[date(2025, 6, 9)].total == Decimal("10.00")
    assert o3[date(2025, 6, 10)].total == Decimal("2.00")
    # An aware timestamp is judged by its UTC day: 23:30 on the 9th in UTC-2 is the 10th in UTC.
    late = datetime(2025, 6, 9, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert builtin.lookup(provider="openai", model="o3", at=late).effective_from == date(2025, 6, 10)
    assert builtin.lookup(provider="openai", model="o3").effective_from == date(2025, 6, 10)  # today


def test_a_future_entry_does_not_apply_before_its_day():
    table = _table(
        "models:\n"
        "  - {provider: p, model: m, effective_from: 2024-01-01, input: 1, output: 1}\n"
        "  - {provider: p, model: m, effective_from: 2999-01-01, input: 9, output: 9}\n"
    )
    assert table.lookup(provider="p", model="m").rates.input == Decimal(1)
    assert table.lookup(provider="p", model="m", at=date(2999, 1, 1)).rates.input == Decimal(9)


@pytest.mark.parametrize(
    ("provider", "name", "expected", "rule"),
    [
        ("openai", "gpt-4o-2024-11-20", ("openai", "gpt-4o"), "alias"),
        ("openai", "gpt-4o-2024-05-13", ("openai", "gpt-4o-2024-05-13"), "name"),  # its own price
        ("openai", "GPT-4.1-mini-2025-04-14", ("openai", "gpt-4.1-mini"), "date suffix"),
        ("anthropic", "claude-sonnet-4-5-20250929", ("anthropic", "claude-sonnet-4-5"), "date suffix"),
        ("anthropic", "claude-sonnet-4-20250514", ("anthropic", "claude-sonnet-4-0"), "date suffix + alias"),
        (None, "openai/gpt-4o-mini", ("openai", "gpt-4o-mini"), "provider prefix"),
        (None, "gemini/gemini-2.5-flash", ("gcp.gemini", "gemini-2.5-flash"), "provider prefix"),
        ("mistral_ai", "mistral-small-2506", ("mistral_ai", "mistral-small-latest"), "alias"),
        (None, "deepseek-reasoner", ("deepseek", "deepseek-reasoner"), "name"),
        # An OpenAI-compatible client pointed at DeepSeek reports provider "openai".
        ("openai", "deepseek-chat", ("deepseek", "deepseek-chat"), "name"),
    ],
)
def test_names_resolve_to_their_family(builtin, provider, name, expected, rule):
    assert builtin.resolve_model_name(provider=provider, model=name) == expected
    assert builtin.explain_model_name(provider=provider, model=name) == rule


def test_date_suffix_rule_only_strips_whole_dates(builtin):
    assert builtin.resolve_model_name(provider="mistral_ai", model="mistral-large-2407") is None
    assert builtin.resolve_model_name(provider="openai", model="gpt-4o-202408") is None


def test_unknown_model_has_no_price_and_an_ambiguous_name_is_not_guessed(builtin):
    usage = Usage(input_tokens=10, output_tokens=10)
    assert builtin.cost(provider="openai", model="gpt-unknown-9", usage=usage) is None
    assert builtin.lookup(provider=None, model="") is None
    table = _table(
        "models:\n"
        "  - {provider: a, model: shared, effective_from: 2024-01-01, input: 1, output: 1}\n"
        "  - {provider: b, model: shared, effective_from: 2024-01-01, input: 2, output: 2}\n"
    )
    assert table.cost(provider=None, model="shared", usage=usage) is None
    assert table.cost(provider="c", model="shared", usage=usage) is None
    assert table.cost(provider="b", model="shared", usage=usage).total == Decimal("0.00004")


def test_builtin_table_covers_the_current_models_of_every_provider(builtin):
    required = {
        "openai": [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "o1",
            "o3",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
        ],
        "anthropic": [
            "claude-opus-4-20250514",
            "claude-opus-4-1-20250805",
            "claude-opus-4-5-20251101",
            "claude-sonnet-4-20250514",
            "claude-sonnet-4-5-20250929",
            "claude-3-5-haiku-20241022",
            "claude-haiku-4-5-20251001",
            "claude-3-7-sonnet-20250219",
        ],
        "gcp.gemini": ["gemini-2.0-flash", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"],
        "mistral_ai": [
            "mistral-large-latest",
            "mistral-medium-latest",
            "mistral-small-latest",
            "codestral-latest",
        ],
        "deepseek": ["deepseek-chat", "deepseek-reasoner"],
    }
    for provider, models in required.items():
        for model in models:
            price = builtin.lookup(provider=provider, model=model, at=date(2025, 12, 1))
            assert price is not None, model
            assert price.provider == provider, model
    # Anthropic cache writes are 1.25x (5 minutes) and 2x (1 hour) input; reads 0.1x
    # (Claude 3 Haiku, priced before that rule, has rounder numbers).
    for p in builtin.entries():
        if p.provider == "anthropic" and p.model != "claude-3-haiku":
            r = p.rates
            assert (r.cache_write_5m, r.cache_write_1h, r.cache_read) == (
                r.input * Decimal("1.25"),
                r.input * 2,
                r.input / 10,
            ), p.model


def test_default_table_is_loaded_lazily_once_and_honours_the_env(tmp_path, monkeypatch):
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, nexus_otel.pricing; print('yaml' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "False"  # importing reads no file and loads no YAML parser
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "models:\n  - {provider: acme, model: acme-1, effective_from: 2024-01-01, input: 1, output: 2}\n"
    )
    monkeypatch.setenv("NEXUS_PRICES_FILE", str(extra))
    reset_default_table()
    try:
        tables: list[PriceTable] = []
        threads = [threading.Thread(target=lambda: tables.append(get_default_table())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(t) for t in tables}) == 1
        assert tables[0].lookup(provider="acme", model="acme-1") is not None
        assert tables[0].lookup(provider="openai", model="gpt-4o") is not None
    finally:
        monkeypatch.delenv("NEXUS_PRICES_FILE")
        reset_default_table()


def test_integer_and_float_fast_paths_equal_the_decimal_reference():
    """price_usage's integer path must equal the Decimal reference exactly, and price_floats()
    (what metrics and events carry) must be float() of each Decimal component."""
    from datetime import date as _date
    from decimal import Decimal as D

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from nexus_otel import semconv as sc
    from nexus_otel.pricing.cost import price_floats, price_usage, price_usage_decimal
    from nexus_otel.pricing.model import ModelPrice as MP
    from nexus_otel.pricing.model import Rates as R
    from nexus_otel.usage import Usage as U

    # places=4: whole 1e-10 USD per token (exact products); 6 and 10: whole 1e-10 USD per 1M
    # tokens (rounded products); 12: finer than that (the Decimal fallback).
    prices = st.one_of(
        *(
            st.decimals(min_value=0, max_value=1000, places=places, allow_nan=False, allow_infinity=False)
            for places in (4, 6, 10, 12)
        )
    )
    tokens = st.integers(min_value=0, max_value=50_000_000)

    @settings(max_examples=400, deadline=None)
    @given(prices, prices, prices, prices, prices, prices, tokens, tokens, tokens, tokens, tokens, tokens)
    def check(p_in, p_out, p_read, p_w5, p_w1, p_reason, uncached, read, w5, w1, visible, reasoning):
        rates = R(
            input=p_in,
            output=p_out,
            cache_read=p_read,
            cache_write_5m=p_w5,
            cache_write_1h=p_w1,
            reasoning=p_reason,
        )
        price = MP(provider="p", model="m", effective_from=_date(2024, 1, 1), rates=rates)
        usage = U.from_parts(
            uncached_input_tokens=uncached,
            cache_read_tokens=read,
            cache_write_5m_tokens=w5,
            cache_write_1h_tokens=w1,
            output_tokens=visible + reasoning,
            reasoning_tokens=reasoning,
        )
        fast, reference = price_usage(price, usage), price_usage_decimal(price, usage)
        assert fast == reference
        assert str(fast.total) == str(reference.total)
        assert price_floats(price, usage) == tuple(
            float(getattr(reference, t)) for t in (*sc.COST_TYPES, "total")
        )

    check()
    assert D("0.15").scaleb(10) == D("1500000000")  # 0.15 USD per 1M = 1.5e9 units of 1e-10 USD
