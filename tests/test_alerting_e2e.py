"""rules/ end to end: real Prometheus evaluates the real rules, real Alertmanager routes,
groups and inhibits, and the notifications reach a webhook.

Metrics come from the real recorder behind ``nexus_otel.configure()``'s in-process
/metrics endpoint. The budget gauges come from :class:`BudgetGauges`, a small
prometheus_client exporter with the collector's metric and label names that reads
month-to-date spend per team from the app's own cost counters: it lets this test
set exact budget shares per team to check routing, inhibition and resolution. The
collector's own budget gauges drive the same alerts in ``test_demo_e2e.py``.

The test copy of the rules only drops ``for:`` (so nothing waits minutes); every
expression and threshold is the shipped one. The cost spike is found against a
backfilled day of ordinary spend, the way it would be in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nexus_otel.record import CallRecord
from nexus_otel.usage import Usage
from tests.prom_servers import (
    WebhookReceiver,
    backfill_openmetrics,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from tests.scrape import scrape

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parent.parent / "rules"
BUDGET_LABELS = ("nexus_team", "nexus_project", "gen_ai_request_model", "budget_scope")
# gpt-test in tests/data/test-prices.yaml: 1000 input tokens * $2/M + 500 output * $8/M.
CALL_COST_USD = 0.006
CALLS_PER_BUDGET_TEAM = 10
# Share of its budget each team will have spent: alpha crosses 50%, beta 75%, gamma 90%.
SPENT_SHARE = {"alpha": 0.6, "beta": 0.8, "gamma": 0.95}
# (team, severity) muted by a higher threshold of the same budget.
INHIBITED = (("beta", "info"), ("gamma", "warning"), ("gamma", "info"))


class BudgetGauges(Collector):
    """Stand-in for the collector's budget exporter: team budgets and month-to-date spend."""

    def __init__(self, *, app_metrics_url: str, budgets_usd: dict[str, float]) -> None:
        self.app_metrics_url = app_metrics_url
        self.budgets_usd = dict(budgets_usd)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        spent = scrape(self.app_metrics_url)
        budget = GaugeMetricFamily("nexus_budget_usd", "Monthly budget.", labels=BUDGET_LABELS)
        spend = GaugeMetricFamily(
            "nexus_spend_month_to_date_usd", "Spend since the 1st of the month.", labels=BUDGET_LABELS
        )
        for team, amount in self.budgets_usd.items():
            labels = [team, "all", "all", "team"]
            budget.add_metric(labels, amount)
            spend.add_metric(labels, spent.value("nexus_cost_usd_total", {"nexus_team": team}, default=0.0))
        yield budget
        yield spend


def _rules_without_for(workdir: Path) -> list[str]:
    """Copies of rules/*.yml with ``for:`` removed; expressions and thresholds untouched."""
    paths = []
    for source in sorted(RULES.glob("*.yml")):
        if source.name == "alertmanager.yml":
            continue
        doc = yaml.safe_load(source.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule.pop("for", None)
        target = workdir / source.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(str(target))
    return paths


def _alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """rules/alertmanager.yml with its receivers pointed at the test webhook and short timers."""
    config = yaml.safe_load((RULES / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = webhook_url
            hook.pop("http_config", None)  # the test webhook takes no key
    # group_wait leaves Alertmanager's inhibitor time to see the critical alert that arrived in
    # the same batch before the warning's group flushes (1 s was too short on a loaded machine)
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="3s", group_interval="1s", repeat_interval="1h")
    return config


def _ordinary_spend_history(now: float) -> str:
    """A day of 0.0002 USD/s for search/assistant, ending ten minutes ago."""
    name = "team_project:nexus_cost_usd:rate5m"
    lines = [f"# TYPE {name} gauge"]
    start, end = int(now - 26 * 3600), int(now - 600)
    lines += [
        f'{name}{{nexus_team="search",nexus_project="assistant"}} 0.0002 {t}' for t in range(start, end, 60)
    ]
    return "\n".join([*lines, "# EOF", ""])


def _record(recorder: Any, *, team: str, project: str, model: str = "gpt-test", scale: int = 1) -> None:
    recorder.record_call(
        CallRecord(
            model=model,
            provider="openai",
            response_model=model,
            duration_s=0.4,
            usage=Usage(input_tokens=1000 * scale, output_tokens=500 * scale),
            team=team,
            project=project,
            feature="qa",
        )
    )


def _matching(alerts: list[dict], *, status: str | None = None, **labels: str) -> list[dict]:
    return [
        a
        for a in alerts
        if (status is None or a["status"] == status)
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


def test_budget_and_cost_spike_alerts_reach_the_webhook_inhibited_and_resolved(telemetry, tmp_path):
    recorder = telemetry.recorder
    for team in SPENT_SHARE:
        for _ in range(CALLS_PER_BUDGET_TEAM):
            _record(recorder, team=team, project="all-projects")
    spent = CALL_COST_USD * CALLS_PER_BUDGET_TEAM
    gauges = BudgetGauges(
        app_metrics_url=telemetry.prometheus_url,
        budgets_usd={team: spent / share for team, share in SPENT_SHARE.items()},
    )
    registry = CollectorRegistry()
    registry.register(gauges)
    budget_server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)

    backfill_openmetrics(_ordinary_spend_history(time.time()), tsdb=tmp_path / "tsdb", workdir=tmp_path)
    webhook = WebhookReceiver()
    alertmanager = start_alertmanager(config=_alertmanager_config(webhook.url), workdir=tmp_path)
    app_target = telemetry.prometheus_url.split("//", 1)[1].split("/", 1)[0]
    prometheus = None
    spiking = threading.Event()
    spiking.set()

    def spike() -> None:
        # search/assistant suddenly spends ~1.8 USD/s on the big model.
        while spiking.is_set():
            _record(recorder, team="search", project="assistant", model="gpt-test-big", scale=10)
            time.sleep(0.1)

    spiker = threading.Thread(target=spike, daemon=True)
    try:
        prometheus = start_prometheus(
            config={
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": _rules_without_for(tmp_path),
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [alertmanager.url.removeprefix("http://")]}]}
                    ]
                },
                "scrape_configs": [
                    {"job_name": "nexus-app", "static_configs": [{"targets": [app_target]}]},
                    {
                        "job_name": "nexus-collector",
                        "static_configs": [{"targets": [f"127.0.0.1:{budget_server.server_port}"]}],
                    },
                ],
            },
            workdir=tmp_path,
        )
        spiker.start()

        def arrived() -> bool:
            alerts = webhook.alerts()
            return all(
                _matching(alerts, status="firing", alertname=name, nexus_team=team, severity=severity)
                for name, team, severity in (
                    ("NexusBudgetBurn", "alpha", "info"),
                    ("NexusBudgetBurn", "beta", "warning"),
                    ("NexusBudgetBurn", "gamma", "critical"),
                    ("NexusCostSpike", "search", "warning"),
                )
            )

        wait_until(arrived, timeout_s=40, what=f"budget and cost alerts; got {webhook.alerts()}")
        alerts = webhook.alerts()

        (gamma,) = _matching(alerts, alertname="NexusBudgetBurn", nexus_team="gamma", severity="critical")
        assert gamma["receiver"] == "nexus-critical"
        assert {k: gamma["labels"][k] for k in (*BUDGET_LABELS, "category")} == {
            "nexus_team": "gamma",
            "nexus_project": "all",
            "gen_ai_request_model": "all",
            "budget_scope": "team",
            "category": "budget",
        }
        assert gamma["annotations"]["summary"] == "Team budget (team=gamma, project=all) is 95% spent"
        assert "past the 90% threshold (0.06 of 0.06 USD)" in gamma["annotations"]["description"]
        assert gamma["annotations"]["runbook_url"].endswith("/docs/runbooks.md#nexusbudgetburn")
        (beta,) = _matching(alerts, alertname="NexusBudgetBurn", nexus_team="beta", severity="warning")
        assert beta["receiver"] == "nexus-warning"
        (alpha,) = _matching(alerts, alertname="NexusBudgetBurn", nexus_team="alpha", severity="info")
        assert alpha["receiver"] == "nexus-info"

        (cost,) = _matching(alerts, alertname="NexusCostSpike", nexus_team="search")
        assert cost["labels"]["nexus_project"] == "assistant"
        assert cost["receiver"] == "nexus-warning"
        assert "against a usual 0.72 USD/h" in cost["annotations"]["description"]

        # Prometheus did fire the lower severities; Alertmanager holds them as inhibited.
        def inhibited() -> list[dict]:
            held = alertmanager.get_json("/api/v2/alerts", filter='alertname="NexusBudgetBurn"')
            return [
                a
                for a in held
                if (a["labels"]["nexus_team"], a["labels"]["severity"]) in INHIBITED
                and a["status"]["state"] == "suppressed"
                and a["status"]["inhibitedBy"]
            ]

        wait_until(lambda: len(inhibited()) == len(INHIBITED), timeout_s=10, what="inhibited alerts")

        # The condition ends: the budgets are raised (a new month's budget file).
        gauges.budgets_usd = {team: amount * 10 for team, amount in gauges.budgets_usd.items()}

        def resolved() -> bool:
            done = webhook.alerts()
            return all(
                _matching(done, status="resolved", alertname="NexusBudgetBurn", nexus_team=team, severity=sev)
                for team, sev in (("alpha", "info"), ("beta", "warning"), ("gamma", "critical"))
            )

        wait_until(resolved, timeout_s=20, what=f"budget alerts to resolve; got {webhook.alerts()}")

        # Inhibition: the lower severities of beta's and gamma's budgets never reached anyone.
        alerts = webhook.alerts()
        for team, severity in INHIBITED:
            assert not _matching(alerts, alertname="NexusBudgetBurn", nexus_team=team, severity=severity)
    finally:
        spiking.clear()
        if spiker.is_alive():
            spiker.join(timeout=5)
        if prometheus is not None:
            prometheus.stop()
        alertmanager.stop()
        webhook.close()
        budget_server.shutdown()
        budget_server.server_close()
