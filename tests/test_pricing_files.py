"""Price files: user overrides layered over the built-in table, and line-numbered errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from click.testing import CliRunner

from nexus_otel.cli import main
from nexus_otel.pricing import PriceFileError, PriceTable, load_price_file
from nexus_otel.usage import Usage

MILLION_EACH = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


def test_user_files_override_and_extend_the_builtin_table_later_files_winning(tmp_path):
    first = tmp_path / "first.yaml"
    first.write_text(
        "models:\n"
        "  # a negotiated discount on the entry the built-in table dates 2024-08-06\n"
        "  - {provider: openai, model: gpt-4o, effective_from: 2024-08-06, input: 1.00, output: 4.00}\n"
        "  - {provider: acme, model: acme-llm, effective_from: 2024-01-01, input: 0.5, output: 0.5,\n"
        "     aliases: [acme-llm-v1]}\n"
    )
    second = tmp_path / "second.yaml"
    second.write_text(
        "models:\n"
        "  - {provider: acme, model: acme-llm, effective_from: 2024-01-01, input: 0.25, output: 0.25}\n"
        "  - {provider: acme, model: acme-llm, effective_from: 2025-01-01, input: 0.1, output: 0.1}\n"
    )
    table = PriceTable.load(first, second)
    at = date(2024, 6, 1)
    assert table.cost(provider="openai", model="gpt-4o", usage=MILLION_EACH).total == Decimal("5.00")
    # The override replaced the price, not the model's other names from the built-in layer.
    assert table.resolve_model_name(provider="openai", model="chatgpt-4o-latest") == ("openai", "gpt-4o")
    assert table.cost(provider="acme", model="acme-llm-v1", usage=MILLION_EACH, at=at).total == Decimal(
        "0.50"
    )
    assert table.cost(
        provider="acme", model="acme-llm", usage=MILLION_EACH, at=date(2025, 2, 1)
    ).total == Decimal("0.2")
    assert table.cost(provider="openai", model="gpt-4o-mini", usage=MILLION_EACH).total == Decimal("0.75")
    assert [p.source for p in table.history(provider="acme", model="acme-llm")] == [str(second)] * 2
    only_user = PriceTable.load(second, include_builtin=False)
    assert only_user.lookup(provider="openai", model="gpt-4o") is None
    assert len(only_user) == 1


def test_anchors_and_merge_keys_share_rates_between_entries(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text(
        "models:\n"
        "  - &base {provider: p, model: a, effective_from: 2024-01-01, input: 3, output: 15, cache_read: 0.3}\n"
        "  - {<<: *base, model: b}\n"
    )
    table = PriceTable.load(path, include_builtin=False)
    assert table.lookup(provider="p", model="b").rates.cache_read == Decimal("0.3")


def _entry(**fields: str) -> str:
    base = {"provider": "p", "model": "m", "effective_from": "2024-01-01", "input": "1", "output": "1"}
    base.update(fields)
    body = "".join(f"    {k}: {v}\n" for k, v in base.items() if v != "DROP")
    return "  - " + body[4:]


BAD_FILES = {
    "unknown key": ("models:\n" + _entry(inptu="2"), 7, "unknown key 'inptu' in a model entry"),
    "negative price": ("models:\n" + _entry(input="-1"), 5, "m input must be >= 0, got -1"),
    "non-numeric price": ("models:\n" + _entry(output="cheap"), 6, "m output must be a number"),
    "price as a list": ("models:\n" + _entry(cache_read="[1]"), 7, "m cache_read must be a number"),
    "infinite price": ("models:\n" + _entry(output=".inf"), 6, "must be a number"),
    "per-token price in a per-1M file": ("models:\n" + _entry(input="2000000"), 5, "per 1M tokens"),
    "bad date": (
        "models:\n" + _entry(effective_from="2024-13-01"),
        4,
        "effective_from must be a date YYYY-MM-DD",
    ),
    "date and time": ("models:\n" + _entry(effective_from="2024-01-01T00:00:00"), 4, "YYYY-MM-DD"),
    "missing output": ("models:\n" + _entry(output="DROP"), 2, "m is missing output price"),
    "missing input and output": (
        "models:\n" + _entry(input="DROP", output="DROP"),
        2,
        "m is missing input and output price",
    ),
    "missing provider": ("models:\n" + _entry(provider="DROP"), 2, "model entry is missing 'provider'"),
    "tier without threshold": (
        "models:\n" + _entry() + "    tiers:\n      - {input: 2, output: 2}\n",
        8,
        "tier of m has no 'above_input_tokens' threshold",
    ),
    "tier threshold not a number": (
        "models:\n" + _entry() + "    tiers:\n      - {above_input_tokens: 200k, input: 2, output: 2}\n",
        8,
        "above_input_tokens must be a positive whole number",
    ),
    "tier missing output": (
        "models:\n" + _entry() + "    tiers:\n      - above_input_tokens: 200000\n        input: 2\n",
        8,
        "tier above 200000 of m is missing output price",
    ),
    "two tiers at one threshold": (
        "models:\n"
        + _entry()
        + "    tiers:\n      - {above_input_tokens: 10, input: 2, output: 2}\n"
        + "      - {above_input_tokens: 10, input: 3, output: 3}\n",
        9,
        "two tiers of m above 10 input tokens",
    ),
    "duplicate entry": (
        "models:\n" + _entry() + _entry(input="2"),
        7,
        "duplicate entry for p/m effective 2024-01-01 (first at line 2)",
    ),
    "one alias for two models": (
        "models:\n" + _entry(aliases="[x]") + _entry(model="n", aliases="[x]"),
        8,
        "name 'x' of p/n already names p/m (line 2)",
    ),
    "duplicate key": ("models:\n" + _entry() + "    input: 2\n", 7, "duplicate key 'input'"),
    "models not a list": ("models: {a: 1}\n", 1, "'models' must be a list"),
    "no models": ("version: 1\n", 1, "missing 'models' list"),
    "unknown version": ("version: 2\nmodels: []\n", 1, "unsupported version '2'"),
    "empty file": ("", 1, "empty price file"),
    "broken YAML": ("models:\n  - [1, 2\n", 3, "not valid YAML"),
}


@pytest.mark.parametrize(("text", "line", "message"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_bad_price_files_report_the_line_through_load_and_check(tmp_path, text, line, message):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PriceFileError) as err:
        PriceTable.load(path)
    expected = f"{path}:{line}: "
    assert any(e.startswith(expected) and message in e for e in err.value.errors), err.value.errors
    assert str(err.value) == "\n".join(err.value.errors)
    result = CliRunner().invoke(main, ["prices", "--check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == err.value.errors


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n" + _entry(input="-1") + _entry(model="n", effective_from="soon"))
    with pytest.raises(PriceFileError) as err:
        load_price_file(path)
    assert [e.split(": ", 1)[0] for e in err.value.errors] == [f"{path}:5", f"{path}:9"]


def test_a_missing_file_is_a_price_file_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PriceFileError, match=r"nope.yaml: cannot read price file: No such file"):
        PriceTable.load(missing)


def test_the_shipped_table_passes_the_check():
    from importlib import resources

    shipped = resources.files("nexus_otel").joinpath("data/prices.yaml")
    assert len(load_price_file(str(shipped))) >= 40
