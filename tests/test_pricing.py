"""Pricing: every token once, Decimal rules pinned, aliases, dates, tiers, overrides, bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from nexus_otel.cli import main
from nexus_otel.pricing import COST_QUANTUM, PriceFileError, PriceTable, parse_prices
from nexus_otel.pricing.litellm import convert_litellm
from nexus_otel.usage import Usage

DATA = Path(__file__).parent / "data" / "pricing"


@pytest.fixture(scope="module")
def builtin() -> PriceTable:
    return PriceTable.load()


def test_openai_shape_cached_and_reasoning_are_priced_once(builtin):
    # OpenAI reports prompt_tokens=12000 *including* cached_tokens=8000, and
    # completion_tokens=3000 *including* reasoning_tokens=2000 (o3 at $2/$0.50/$8 per 1M).
    usage = Usage(input_tokens=12_000, output_tokens=3_000, cache_read_tokens=8_000, reasoning_tokens=2_000)
    cost = builtin.cost(provider="openai", model="o3", usage=usage, at=date(2025, 7, 1))
    assert cost.input == Decimal("0.0080000000")  # 4,000 uncached x 2.00
    assert cost.cache_read == Decimal("0.0040000000")  # 8,000 x 0.50
    assert cost.output == Decimal("0.0080000000")  # 1,000 visible x 8.00
    assert cost.reasoning == Decimal("0.0160000000")  # 2,000 x 8.00
    assert cost.total == Decimal("0.0360000000")
    naive_double_count = (12_000 * 2 + 8_000 * Decimal("0.5") + 3_000 * 8 + 2_000 * 8) / 1_000_000
    assert cost.total < naive_double_count


def test_anthropic_shape_cache_read_and_writes_are_priced_once(builtin):
    # Anthropic reports input_tokens=500 *apart from* cache_read=20000 and cache writes.
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


def test_decimal_rule_each_component_rounds_half_even_to_a_ten_billionth():
    table = PriceTable(
        parse_prices(
            "models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 0.15, output: 0.6}\n"
        )
    )
    # 1 token x 0.15/1M = 1.5e-7 exactly; 7 tokens at 0.000001 would be 7e-12 -> rounds.
    assert Decimal("1e-10") == COST_QUANTUM
    cost = table.cost(provider="p", model="m", usage=Usage(input_tokens=1, output_tokens=1))
    assert (cost.input, cost.output) == (Decimal("1.500E-7"), Decimal("6.000E-7"))
    tiny = PriceTable(
        parse_prices(
            "models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 0.000015, output: 0.000025}\n"
        )
    )
    c = tiny.cost(provider="p", model="m", usage=Usage(input_tokens=5, output_tokens=5))
    # 5 x 0.000015 / 1M = 7.5e-11 -> 1e-10 (half-even rounds 0.75 up); 5 x 0.000025/1M = 1.25e-10 -> 1e-10 (tie to even).
    assert c.input == Decimal("1E-10")
    assert c.output == Decimal("1E-10")
    assert c.total == Decimal("2E-10")


def test_long_context_tier_applies_to_the_whole_request_above_the_threshold(builtin):
    at_threshold = builtin.cost(
        provider="gcp.gemini", model="gemini-2.5-pro", usage=Usage(input_tokens=200_000, output_tokens=1000)
    )
    above = builtin.cost(
        provider="gcp.gemini", model="gemini-2.5-pro", usage=Usage(input_tokens=200_001, output_tokens=1000)
    )
    assert at_threshold.input == Decimal("0.2500000000")  # 200,000 x 1.25
    assert at_threshold.output == Decimal("0.0100000000")
    assert above.input == Decimal("0.5000025000")  # 200,001 x 2.50
    assert above.output == Decimal("0.0150000000")  # 1,000 x 15.00


def test_effective_from_picks_the_price_in_force_on_the_call_date(builtin):
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    assert builtin.cost(provider="openai", model="o3", usage=usage, at=date(2025, 5, 1)).total == Decimal(
        "10.00"
    )
    assert builtin.cost(provider="openai", model="o3", usage=usage, at=date(2025, 6, 10)).total == Decimal(
        "2.00"
    )
    assert (
        builtin.cost(provider="openai", model="o3", usage=usage, at=date(2025, 4, 15)) is None
    )  # before launch


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-2024-11-20", ("openai", "gpt-4o")),  # explicit alias
        ("gpt-4o-2024-05-13", ("openai", "gpt-4o-2024-05-13")),  # its own price, not the family's
        ("gpt-4.1-mini-2025-04-14", ("openai", "gpt-4.1-mini")),  # dated snapshot
        ("claude-haiku-4-5-20251001", ("anthropic", "claude-haiku-4-5")),
        ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),  # gateway-style prefix
        ("mistral-small-2506", ("mistral_ai", "mistral-small-latest")),
    ],
)
def test_names_resolve_to_their_family(builtin, name, expected):
    assert builtin.resolve_model_name(provider=None, model=name) == expected


def test_unknown_model_has_no_price(builtin):
    assert builtin.cost(provider="openai", model="gpt-unknown-9", usage=Usage(input_tokens=10)) is None


def test_user_file_overrides_and_extends_the_builtin_table(tmp_path):
    override = tmp_path / "mine.yaml"
    override.write_text(
        "models:\n"
        "  - {provider: openai, model: gpt-4o, effective_from: 2024-08-06, input: 1.00, output: 4.00}\n"
        "  - {provider: acme, model: acme-llm, effective_from: 2024-01-01, input: 0.5, output: 0.5}\n"
    )
    table = PriceTable.load(override)
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost(provider="openai", model="gpt-4o", usage=usage).total == Decimal("5.00")
    assert table.cost(provider="acme", model="acme-llm", usage=usage).total == Decimal("1.0")
    assert table.cost(provider="openai", model="gpt-4o-mini", usage=usage).total == Decimal("0.75")


BAD_FILES = [
    (
        "models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 1, output: 1, inptu: 2}\n",
        2,
        "unknown key 'inptu'",
    ),
    (
        "models:\n  - provider: p\n    model: m\n    effective_from: 2024-01-01\n    input: -1\n    output: 1\n",
        5,
        "finite number >= 0",
    ),
    (
        "models:\n  - provider: p\n    model: m\n    effective_from: 2024-01-01\n    input: cheap\n    output: 1\n",
        5,
        "must be a number",
    ),
    (
        "models:\n  - provider: p\n    model: m\n    effective_from: 2024-13-01\n    input: 1\n    output: 1\n",
        4,
        "YYYY-MM-DD",
    ),
    (
        "models:\n  - provider: p\n    model: m\n    effective_from: 2024-01-01\n    input: 1\n",
        2,
        "missing output price",
    ),
    (
        "models:\n  - provider: p\n    model: m\n    effective_from: 2024-01-01\n    input: 1\n    output: 1\n"
        "    tiers:\n      - {input: 2, output: 2}\n",
        8,
        "no 'above_input_tokens'",
    ),
    (
        "models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 1, output: 1}\n"
        "  - {provider: p, model: m, effective_from: 2024-01-01, input: 2, output: 2}\n",
        3,
        "duplicate entry for p/m",
    ),
    ("models: {a: 1}\n", 1, "'models' must be a list"),
    ("models:\n  - [1, 2\n", 3, "not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_bad_price_files_report_the_line(tmp_path, text, line, message):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PriceFileError) as err:
        PriceTable.load(path)
    assert any(e.startswith(f"{path}:{line}:") and message in e for e in err.value.errors), err.value.errors
    result = CliRunner().invoke(main, ["prices", "--check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:{line}:" in result.output


def test_check_of_a_good_file_exits_zero_in_a_real_process(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 1, output: 2}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 1}\n")
    ok = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "prices", "--check", str(good)], capture_output=True, text=True
    )
    ko = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "prices", "--check", str(bad)], capture_output=True, text=True
    )
    assert (ok.returncode, ko.returncode) == (0, 1)
    assert f"{bad}:2: m is missing output price" in ko.stderr


def test_litellm_import_round_trip_gives_the_same_costs(tmp_path):
    source = DATA / "litellm_sample.json"
    out = tmp_path / "imported.yaml"
    result = CliRunner().invoke(
        main, ["prices", "import", str(source), "-o", str(out), "--effective-from", "2025-01-01"]
    )
    assert result.exit_code == 0, result.output
    assert "imported 3 models" in result.output
    table = PriceTable.load(out, include_builtin=False)
    raw = json.loads(source.read_text(), parse_float=Decimal)
    usage = Usage(
        input_tokens=250_000, output_tokens=2_000, cache_read_tokens=50_000, cache_write_5m_tokens=10_000
    )
    for key, provider, model in (
        ("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("gemini/gemini-2.5-flash", "gcp.gemini", "gemini-2.5-flash"),
    ):
        spec = raw[key]
        big = usage.input_tokens > 200_000 and "input_cost_per_token_above_200k_tokens" in spec
        sfx = "_above_200k_tokens" if big else ""
        expected = (
            usage.uncached_input_tokens * spec["input_cost_per_token" + sfx]
            + usage.cache_read_tokens
            * spec.get("cache_read_input_token_cost" + sfx, spec["input_cost_per_token" + sfx])
            + usage.cache_write_5m_tokens
            * spec.get("cache_creation_input_token_cost" + sfx, spec["input_cost_per_token" + sfx])
            + usage.output_tokens * spec["output_cost_per_token" + sfx]
        )
        cost = table.cost(provider=provider, model=model, usage=usage)
        assert cost.total == expected.quantize(Decimal("1e-10")), key
    assert (
        table.cost(provider="openai", model="text-embedding-3-small", usage=usage) is None
    )  # embeddings skipped


def test_litellm_import_rejects_non_json(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"prices.json:1: not valid JSON"):
        convert_litellm(bad)


def test_prices_cli_lists_and_looks_up():
    runner = CliRunner()
    listing = runner.invoke(main, ["prices", "--provider", "anthropic", "--json"])
    rows = json.loads(listing.output)
    assert {r["provider"] for r in rows} == {"anthropic"}
    lookup = runner.invoke(main, ["prices", "gpt-4o-2024-08-06", "--json"])
    info = json.loads(lookup.output)
    assert (info["provider"], info["model"], info["current"]["input"]) == ("openai", "gpt-4o", "2.50")
    missing = runner.invoke(main, ["prices", "gpt-nope"])
    assert missing.exit_code == 1
    assert "no price for model 'gpt-nope'" in missing.output
