"""Budgets: file validation with line numbers, month-to-date spend in a budget timezone, gauges, reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporters.budgets import BudgetCollector, BudgetFileError, BudgetManager, load_budgets, parse_budgets
from exporters.rollup import RollupWriter
from tests.rollup_data import model_call, utc

REPO = Path(__file__).resolve().parent.parent

BERLIN = """\
timezone: Europe/Berlin
budgets:
  - team: search
    monthly_usd: 100
    models: {gpt-4o: 20}
  - team: search
    project: helpdesk
    monthly_usd: 50
  - models: {claude-sonnet-4: 30}
"""


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(team: str, project: str, model: str, scope: str) -> tuple:
    return tuple(sorted({"nexus_team": team, "nexus_project": project, "gen_ai_request_model": model,
                         "budget_scope": scope}.items()))  # fmt: skip


@pytest.fixture
def rollup(tmp_path):
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    writer.write([
        # 23:30 UTC on 31 January is 00:30 on 1 February in Berlin
        model_call(utc("2026-01-31T22:59:59"), "jan", team="search", cost_usd=1000.0),
        model_call(utc("2026-01-31T23:30:00"), "feb-1", team="search", model="gpt-4o", cost_usd=4.0),
        model_call(utc("2026-02-10T12:00:00"), "feb-2", team="search", project="helpdesk", model="gpt-4o-mini", cost_usd=2.5),
        model_call(utc("2026-02-11T12:00:00"), "feb-3", team="support", model="claude-sonnet-4", cost_usd=7.0),
        model_call(utc("2026-02-12T12:00:00"), "feb-4", team="search", model="claude-sonnet-4", cost_usd=1.0),
        model_call(utc("2026-03-01T00:00:00"), "mar", team="search", cost_usd=500.0),
    ])  # fmt: skip
    writer.close()
    return path


def test_month_to_date_spend_in_berlin_across_the_utc_month_boundary(tmp_path, rollup):
    budgets = parse_budgets(BERLIN)
    now = utc("2026-02-15T12:00:00")
    spend = {(s.team, s.project, s.model, s.scope): v for s, v in budgets.month_to_date(rollup, now).items()}
    assert spend == {
        ("search", "all", "all", "team"): 4.0 + 2.5 + 1.0,
        ("search", "all", "gpt-4o", "model"): 4.0,
        ("search", "helpdesk", "all", "project"): 2.5,
        ("all", "all", "claude-sonnet-4", "model"): 8.0,
    }
    # in UTC the 23:30 call still belongs to January
    utc_budgets = parse_budgets(BERLIN.replace("Europe/Berlin", "UTC"))
    assert utc_budgets.month_to_date(rollup, now)[utc_budgets.series[0]] == 3.5


def test_half_hour_timezone_uses_exact_minute_boundaries(tmp_path):
    path = tmp_path / "r.db"
    writer = RollupWriter(path, retention_days=None)
    # St. John's is UTC-03:30: February starts at 2026-02-01T03:30Z
    writer.write([model_call(utc("2026-02-01T03:29:59"), "before", team="a", cost_usd=1.0),
                  model_call(utc("2026-02-01T03:30:00"), "after", team="a", cost_usd=2.0)])  # fmt: skip
    writer.close()
    budgets = parse_budgets("timezone: America/St_Johns\nbudgets:\n  - team: a\n    monthly_usd: 10\n")
    now = utc("2026-02-02T03:30:00")
    assert list(budgets.month_to_date(path, now).values()) == [2.0]
    month = budgets.month(now)
    assert (month.days_elapsed, month.days_total) == (1.0, 28)
    assert list(budgets.month_to_date(path, utc("2026-02-01T03:00:00")).values()) == [
        1.0
    ]  # still January there


def test_gauges_scraped_with_exact_values(rollup):
    path = rollup.parent / "budgets.yaml"
    path.write_text(BERLIN)
    now = utc("2026-02-15T12:00:00")  # 13:00 in Berlin on the 15th: 14 days 13 hours elapsed
    manager = BudgetManager(path, rollup, poll_interval_s=0, clock=lambda: now)
    registry = CollectorRegistry()
    registry.register(BudgetCollector(manager))
    got = samples(registry)
    assert got[("nexus_budget_usd", labels("search", "all", "all", "team"))] == 100.0
    assert got[("nexus_budget_usd", labels("search", "all", "gpt-4o", "model"))] == 20.0
    assert got[("nexus_budget_usd", labels("search", "helpdesk", "all", "project"))] == 50.0
    assert got[("nexus_budget_usd", labels("all", "all", "claude-sonnet-4", "model"))] == 30.0
    assert got[("nexus_spend_month_to_date_usd", labels("search", "all", "all", "team"))] == 7.5
    assert got[("nexus_spend_month_to_date_usd", labels("all", "all", "claude-sonnet-4", "model"))] == 8.0
    assert got[("nexus_budget_month_days_elapsed", ())] == pytest.approx(14 + 13 / 24)
    assert got[("nexus_budget_month_days_total", ())] == 28.0
    assert got[("nexus_budget_reload_errors_total", ())] == 0.0
    assert got[("nexus_budget_last_reload_success_timestamp_seconds", ())] == now
    # every budget series carries the same identifying label set
    budget_labels = {
        tuple(k for k, _ in lab)
        for (name, lab) in got
        if name.startswith(("nexus_budget_usd", "nexus_spend"))
    }
    assert budget_labels == {("budget_scope", "gen_ai_request_model", "nexus_project", "nexus_team")}
    manager.close()


def test_last_24h_spend_ends_at_the_current_minute(rollup):
    path = rollup.parent / "budgets.yaml"
    path.write_text(BERLIN)
    now = utc("2026-02-11T12:00:30")  # the window is [10 Feb 12:00, 11 Feb 12:00) UTC
    manager = BudgetManager(path, rollup, poll_interval_s=0, clock=lambda: now)
    registry = CollectorRegistry()
    registry.register(BudgetCollector(manager))
    got = samples(registry)
    assert got[("nexus_spend_last_24h_usd", labels("search", "all", "all", "team"))] == 2.5
    assert got[("nexus_spend_last_24h_usd", labels("search", "helpdesk", "all", "project"))] == 2.5
    # the call at 12:00:00 on the 11th belongs to the next window
    assert got[("nexus_spend_last_24h_usd", labels("all", "all", "claude-sonnet-4", "model"))] == 0.0
    manager.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "budgets:\n  - team: a\n    monthly_usd: -5\n",
            r"budgets.yaml:3: budgets\[0\].monthly_usd must be a number",
        ),
        (
            "budgets:\n  - team: a\n    montly_usd: 5\n",
            r"budgets.yaml:3: budgets\[0\]: unknown key 'montly_usd'",
        ),
        ("timezone: Mars/Olympus\nbudgets: []\n", r"budgets.yaml:1: timezone: unknown IANA timezone"),
        (
            "budgets:\n  - team: a\n    monthly_usd: 5\n  - team: a\n    monthly_usd: 6\n",
            r"budgets.yaml:4: budgets\[1\] repeats",
        ),
        (
            "budgets:\n  - monthly_usd: 5\n",
            r"budgets.yaml:2: budgets\[0\]: monthly_usd needs a team or a project",
        ),
        (
            "budgets:\n  - team: a\n    models: {gpt-4o: lots}\n",
            r"budgets.yaml:3: budgets\[0\].models.gpt-4o must be",
        ),
        ("budgets: [\n", r"budgets.yaml:2: invalid YAML"),
        ("", r"budgets.yaml: the file is empty"),
    ],
)
def test_invalid_files_name_the_line(text, message):
    with pytest.raises(BudgetFileError, match=message):
        parse_budgets(text)


def test_reload_keeps_the_last_good_budgets_and_counts_errors(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - team: a\n    monthly_usd: 10\n")
    manager = BudgetManager(path, None, poll_interval_s=0.02)
    registry = CollectorRegistry()
    registry.register(BudgetCollector(manager))
    a = ("nexus_budget_usd", labels("a", "all", "all", "team"))
    assert samples(registry)[a] == 10.0

    def wait_until(predicate):
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline, "the budgets file change was not picked up"
            time.sleep(0.02)

    path.write_text("budgets:\n  - team: a\n    monthly_usd: [oops]\n")  # good -> bad
    wait_until(lambda: manager.reload_errors == 1)
    got = samples(registry)
    assert got[a] == 10.0
    assert got[("nexus_budget_reload_errors_total", ())] == 1.0
    assert (
        "nexus_spend_month_to_date_usd",
        labels("a", "all", "all", "team"),
    ) not in got  # no rollup, no guess

    path.write_text(
        "budgets:\n  - team: a\n    monthly_usd: 25\n  - team: b\n    monthly_usd: 5\n"
    )  # -> good
    wait_until(lambda: manager.budgets.series[0].monthly_usd == 25)
    got = samples(registry)
    assert got[a] == 25.0
    assert got[("nexus_budget_usd", labels("b", "all", "all", "team"))] == 5.0
    assert got[("nexus_budget_reload_errors_total", ())] == 1.0
    manager.close()
    assert load_budgets(path).timezone == "UTC"


SIGHUP_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from exporters.budgets import BudgetManager
manager = BudgetManager(sys.argv[2], None, poll_interval_s=0, install_sighup=True)
print("ready", manager.budgets.series[0].monthly_usd, flush=True)
seen = manager.budgets.series[0].monthly_usd
for line in sys.stdin:
    deadline = time.monotonic() + 10
    while manager.budgets.series[0].monthly_usd == seen and manager.reload_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = manager.budgets.series[0].monthly_usd
    print("now", seen, manager.reload_errors, flush=True)
"""


def test_sighup_reloads_in_a_real_process(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - team: a\n    monthly_usd: 10\n")
    child = subprocess.Popen([sys.executable, "-c", SIGHUP_CHILD, str(REPO), str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline().split() == ["ready", "10.0"]
        # same size and a restored mtime: only the signal can tell the manager to reload
        stat = path.stat()
        path.write_text("budgets:\n  - team: a\n    monthly_usd: 77\n")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        child.send_signal(signal.SIGHUP)
        child.stdin.write("check\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["now", "77.0", "0"]
    finally:
        child.kill()
        child.wait(timeout=10)
