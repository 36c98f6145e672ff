"""``nexus-otel prices``: listing, lookup, --check and errors, through click and a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from nexus_otel.cli import main

GOOD = "models:\n  - {provider: acme, model: acme-1, effective_from: 2024-01-01, input: 1.5, output: 2}\n"


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("NEXUS_PRICES_FILE", raising=False)
    return CliRunner()


def test_listing_shows_todays_prices_per_provider(runner):
    result = runner.invoke(main, ["prices", "--provider", "anthropic"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "provider",
        "model",
        "input",
        "output",
        "cache_read",
        "cache_write_5m",
        "cache_write_1h",
        "effective_from",
        "tiered",
    ]
    sonnet = next(line.split() for line in lines if " claude-sonnet-4-5 " in line)
    assert sonnet == [
        "anthropic",
        "claude-sonnet-4-5",
        "3.00",
        "15.00",
        "0.30",
        "3.75",
        "6.00",
        "2025-09-29",
        "yes",
    ]
    assert all(line.startswith("anthropic ") for line in lines[1:])


def test_listing_as_json_on_a_past_day_with_an_extra_file(runner, tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text(GOOD)
    result = runner.invoke(main, ["prices", "--json", "--at", "2025-05-01", "--prices-file", str(extra)])
    assert result.exit_code == 0, result.output
    rows = {(r["provider"], r["model"]): r for r in json.loads(result.output)}
    assert rows[("openai", "o3")]["input"] == "10.00"  # before the 2025-06-10 cut
    assert ("openai", "gpt-5") not in rows  # not launched yet
    assert rows[("acme", "acme-1")]["input"] == "1.5"
    assert rows[("anthropic", "claude-3-7-sonnet")]["tiers"] == []
    assert ("gcp.gemini", "gemini-2.5-pro") not in rows  # listed from its GA day, 2025-06-17


def test_listing_honours_the_env_files_the_application_uses(runner, tmp_path, monkeypatch):
    extra = tmp_path / "env.yaml"
    extra.write_text(GOOD)
    monkeypatch.setenv("NEXUS_PRICES_FILE", str(extra))
    result = runner.invoke(main, ["prices", "--provider", "acme", "--json"])
    assert [r["model"] for r in json.loads(result.output)] == ["acme-1"]


def test_lookup_resolves_snapshot_names_and_shows_tiers(runner):
    result = runner.invoke(main, ["prices", "claude-sonnet-4-5-20250929"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "claude-sonnet-4-5-20250929 -> anthropic/claude-sonnet-4-5 (matched by date suffix)\n"
    )
    assert (
        "requests above 200,000 input tokens bill every token at: input 6.00, output 22.50" in result.output
    )
    info = json.loads(runner.invoke(main, ["prices", "gpt-4o-2024-08-06", "--json"]).output)
    assert (info["provider"], info["model"], info["matched_by"]) == ("openai", "gpt-4o", "alias")
    assert info["current"]["input"] == "2.50"
    assert "chatgpt-4o-latest" in info["aliases"]
    o3 = json.loads(runner.invoke(main, ["prices", "o3", "--json", "--at", "2025-05-01"]).output)
    assert [h["input"] for h in o3["history"]] == ["10.00", "2.00"]
    assert o3["current"]["effective_from"] == "2025-04-16"


def test_unknown_model_is_a_one_line_error(runner):
    result = runner.invoke(main, ["prices", "gpt-4o-mnii"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: no price for model 'gpt-4o-mnii'; did you mean gpt-4o-mini, gpt-4.1-mini, gpt-5-mini?"
    ]
    unknown_provider = runner.invoke(main, ["prices", "--provider", "nobody"])
    assert unknown_provider.exit_code == 1
    assert len(unknown_provider.stderr.splitlines()) == 1


def test_check_reports_ok_for_a_valid_file(runner, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = runner.invoke(main, ["prices", "--check", str(good)])
    assert (result.exit_code, result.stdout) == (0, f"{good}: OK, 1 price entries\n")


def test_check_exit_codes_in_a_real_process(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: 1}\n")

    def run(*files):
        args = [a for f in files for a in ("--check", str(f))]
        return subprocess.run(
            [sys.executable, "-m", "nexus_otel", "prices", *args], capture_output=True, text=True, timeout=60
        )

    ok, ko, both = run(good), run(bad), run(good, bad)
    assert (ok.returncode, ko.returncode, both.returncode) == (0, 1, 1)
    assert ko.stderr == f"{bad}:2: m is missing output price\n"
    assert both.stdout == f"{good}: OK, 1 price entries\n"


def test_a_bad_extra_file_stops_the_listing_with_its_line(runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {provider: p, model: m, effective_from: 2024-01-01, input: x, output: 1}\n")
    result = runner.invoke(main, ["prices", "--prices-file", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: m input must be a number" in result.stderr


def test_usage_errors_and_help(runner):
    assert runner.invoke(main, ["prices", "a", "b"]).exit_code == 2
    assert runner.invoke(main, ["prices", "import"]).exit_code == 2
    help_text = runner.invoke(main, ["prices", "--help"]).output
    for documented in (
        "--check",
        "--provider",
        "--json",
        "--at",
        "--prices-file",
        "--effective-from",
        "import FILE",
        "NEXUS_PRICES_FILE",
        "USD per 1M tokens",
    ):
        assert documented in help_text, documented
