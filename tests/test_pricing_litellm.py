"""Importing LiteLLM's model_prices_and_context_window.json: same costs as its per-token prices."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from nexus_otel.cli import main
from nexus_otel.pricing import COST_QUANTUM, PriceTable
from nexus_otel.pricing.litellm import convert_litellm
from nexus_otel.usage import Usage

SAMPLE = Path(__file__).parent / "data" / "pricing" / "litellm_sample.json"
RAW = json.loads(SAMPLE.read_text(), parse_float=Decimal)

# LiteLLM key -> (gen_ai.provider.name, model name in our table)
IMPORTED = {
    "claude-sonnet-4-5": ("anthropic", "claude-sonnet-4-5"),
    "gemini/gemini-2.5-pro": ("gcp.gemini", "gemini-2.5-pro"),
    "gemini/gemini-2.5-flash": ("gcp.gemini", "gemini-2.5-flash"),
    "gemini/gemini-1.5-pro": ("gcp.gemini", "gemini-1.5-pro"),
    "gpt-4o-mini": ("openai", "gpt-4o-mini"),
    "o3": ("openai", "o3"),
    "deepseek/deepseek-reasoner": ("deepseek", "deepseek-reasoner"),
    "mistral/mistral-large-latest": ("mistral_ai", "mistral-large-latest"),
}


def _litellm_cost(spec: dict, usage: Usage) -> dict[str, Decimal]:
    """The cost LiteLLM's per-token prices imply, each component rounded like ours."""
    suffix = ""
    for key in spec:
        if key.startswith("input_cost_per_token_above_") and key.endswith("k_tokens"):
            threshold = int(key.removeprefix("input_cost_per_token_above_").removesuffix("k_tokens")) * 1000
            if (
                usage.input_tokens > threshold
                and f"output_cost_per_token_above_{threshold // 1000}k_tokens" in spec
            ):
                suffix = f"_above_{threshold // 1000}k_tokens"

    def rate(name: str, fallback: Decimal) -> Decimal:
        return spec.get(name + suffix, fallback)

    input_rate = rate("input_cost_per_token", None)
    output_rate = rate("output_cost_per_token", None)
    write_5m = rate("cache_creation_input_token_cost", input_rate)
    write_1h = spec.get("cache_creation_input_token_cost_above_1hr" + suffix, write_5m)
    exact = {
        "input": usage.uncached_input_tokens * input_rate,
        "cache_read": usage.cache_read_tokens * rate("cache_read_input_token_cost", input_rate),
        "cache_write": usage.cache_write_5m_tokens * write_5m + usage.cache_write_1h_tokens * write_1h,
        "output": usage.visible_output_tokens * output_rate,
        "reasoning": usage.reasoning_tokens * rate("output_cost_per_reasoning_token", output_rate),
    }
    return {k: v.quantize(COST_QUANTUM) for k, v in exact.items()}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> PriceTable:
    out = tmp_path_factory.mktemp("litellm") / "imported.yaml"
    result = CliRunner().invoke(
        main, ["prices", "import", str(SAMPLE), "-o", str(out), "--effective-from", "2025-01-01"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        "imported 8 models; skipped 5 (1 duplicate name, 1 mode embedding, 1 mode image_generation, "
        "1 no input/output price, 1 provider openrouter)"
    )
    check = CliRunner().invoke(main, ["prices", "--check", str(out)])
    assert check.exit_code == 0, check.output
    return PriceTable.load(out, include_builtin=False)


@pytest.mark.parametrize(
    "usage",
    [
        Usage(input_tokens=1_234, output_tokens=567),
        Usage(input_tokens=12_000, cache_read_tokens=8_000, output_tokens=3_000, reasoning_tokens=2_000),
        Usage.from_parts(
            uncached_input_tokens=900,
            cache_read_tokens=50_000,
            cache_write_5m_tokens=7_000,
            cache_write_1h_tokens=3_000,
            output_tokens=1_500,
        ),
        # Above 200k (and 128k) input tokens: the long-context tiers.
        Usage.from_parts(
            uncached_input_tokens=150_000,
            cache_read_tokens=60_000,
            cache_write_5m_tokens=10_000,
            cache_write_1h_tokens=1_000,
            output_tokens=2_000,
            reasoning_tokens=500,
        ),
        Usage(input_tokens=200_000, output_tokens=1),  # exactly at the threshold: base rates
    ],
    ids=["plain", "cached+reasoning", "cache writes", "long context", "at threshold"],
)
def test_round_trip_costs_match_the_per_token_json(imported, usage):
    for key, (provider, model) in IMPORTED.items():
        cost = imported.cost(provider=provider, model=model, usage=usage, at=date(2025, 1, 1))
        expected = _litellm_cost(RAW[key], usage)
        assert {t: getattr(cost, t) for t in expected} == expected, key
        assert cost.total == sum(expected.values()), key


def test_import_maps_names_modes_and_tiers(imported):
    sonnet = imported.lookup(provider="anthropic", model="claude-sonnet-4-5")
    assert sonnet.effective_from == date(2025, 1, 1)
    assert (sonnet.rates.input, sonnet.rates.cache_write_1h) == (Decimal(3), Decimal(6))
    (tier,) = sonnet.tiers
    assert (tier.above_input_tokens, tier.rates.cache_write_1h) == (200_000, Decimal(12))
    (gemini_15_tier,) = imported.lookup(provider="gcp.gemini", model="gemini-1.5-pro").tiers
    assert gemini_15_tier.above_input_tokens == 128_000
    assert imported.lookup(provider="openai", model="o3").rates.input == Decimal("2")  # mode responses kept
    assert imported.lookup(provider="openai", model="text-embedding-3-small") is None
    assert imported.lookup(provider="openai", model="dall-e-3") is None
    assert imported.lookup(provider=None, model="claude-3.5-sonnet") is None  # openrouter: not mapped


def test_prices_are_written_digit_for_digit_without_floats(tmp_path):
    src = tmp_path / "litellm.json"
    # DeepSeek-R1's 2.19e-06 x 1e6 is 2.1900000000000004 in floats; the YAML must say 2.19.
    src.write_text(
        json.dumps(
            {
                "m": {
                    "input_cost_per_token": 2.19e-06,
                    "output_cost_per_token": 3e-05,
                    "litellm_provider": "openai",
                    "mode": "chat",
                }
            }
        )
    )
    text = convert_litellm(src, effective_from=date(2025, 1, 1)).to_yaml()
    assert "  input: 2.19\n" in text
    assert "  output: 30\n" in text


def test_import_rejects_what_is_not_a_litellm_file(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text("{\n  not json")
    with pytest.raises(ValueError, match=r"prices.json:2: not valid JSON"):
        convert_litellm(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    result = CliRunner().invoke(main, ["prices", "import", str(listing)])
    assert result.exit_code == 1
    assert "expected a JSON object" in result.stderr
    missing = CliRunner().invoke(main, ["prices", "import", str(tmp_path / "none.json")])
    assert missing.exit_code == 1
    assert "cannot read" in missing.stderr
