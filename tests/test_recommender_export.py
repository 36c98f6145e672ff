"""Exports (HTTP and CLI), the Alertmanager inbox and the /metrics gauges, on real rollups."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from prom_servers import wait_until
from recommender_traffic import RecordedTraffic, app_settings, auth
from scrape import Scrape

from nexus_otel.cli import main
from nexus_otel.clock import SimulatedClock
from recommender.app import create_app
from recommender.export import neutralise

T0 = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()
NOW = T0 + 2 * 86400
HOSTILE = ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "plain")


@pytest.fixture(scope="module")
def rollup(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "rollup.db"
    with RecordedTraffic(path, start=T0) as traffic:
        for i in range(300):
            traffic.call(
                T0 + i * 500,
                user_id=HOSTILE[i % len(HOSTILE)],
                team="search" if i % 3 else "support",
                feature="chat",
                input_tokens=100 + i,
                error=i % 10 == 0,
            )
    return path


@pytest.fixture(scope="module")
def client(rollup):
    return create_app(app_settings(rollup)).test_client()


@pytest.fixture(autouse=True)
def at_now(rollup):
    """Every request here happens two days after the first call (the rollup is recorded first)."""
    with SimulatedClock(start=NOW):
        yield


def test_csv_export_parses_back_with_the_csv_module(client, rollup):
    response = client.post(
        "/api/analytics/export", json={"format": "csv", "period": "7d"}, headers=auth("admin")
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert 'filename="nexus-calls-7d.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    raw = sqlite3.connect(rollup)
    stored = raw.execute(
        "SELECT request_id, input_tokens, cost_usd, outcome FROM model_calls ORDER BY ts, id"
    ).fetchall()
    assert [
        (r["request_id"], int(r["input_tokens"]), float(r["cost_usd"]), r["outcome"]) for r in rows
    ] == stored
    assert rows[0]["time"] == "2026-11-02T00:00:00.000Z"


def test_csv_cells_that_spreadsheets_would_run_are_neutralised(client):
    response = client.post(
        "/api/analytics/export", json={"format": "csv", "period": "7d"}, headers=auth("admin")
    )
    users = {row["user_id"] for row in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert users == {'\'=HYPERLINK("http://x")', "'+1+1", "'-2+3", "'@SUM(A1)", "'\tcmd", "plain"}
    assert neutralise(-5) == -5
    assert neutralise("-5") == "'-5"
    assert neutralise("a=b") == "a=b"


def test_json_export_with_insights_and_filters(client):
    body = client.post(
        "/api/analytics/export",
        json={
            "format": "json",
            "period": "custom",
            "from": "2026-11-02T00:00:00Z",
            "to": T0 + 50_000,
            "team": "support",
            "includeInsights": True,
        },
        headers=auth("admin"),
    ).get_json()
    assert body["success"]
    assert body["dataset"] == "calls"
    expected = [i for i in range(300) if i % 3 == 0 and i * 500 < 50_000]
    assert body["row_count"] == len(body["rows"]) == len(expected)
    assert [r["input_tokens"] for r in body["rows"]] == [100 + i for i in expected]
    assert body["insights"]["metrics"]["usage"]["requests"] == len(expected)


def test_hourly_dataset_sums_match_the_calls(client):
    body = client.post(
        "/api/analytics/export",
        json={"format": "json", "dataset": "hourly", "period": "7d"},
        headers=auth("admin"),
    ).get_json()
    assert sum(r["requests"] for r in body["rows"]) == 300
    assert sum(r["errors"] for r in body["rows"]) == 30
    assert {r["time"][-11:] for r in body["rows"]} == {":00:00.000Z"}


def test_cli_export_writes_the_same_bytes_and_no_partial_file(tmp_path, rollup):
    out = tmp_path / "calls.csv"
    result = CliRunner().invoke(
        main, ["export", "--rollup", str(rollup), "--period", "7d", "--team", "support", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 100 rows" in result.output
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 100
    assert {r["team"] for r in rows} == {"support"}
    assert not (tmp_path / "calls.csv.partial").exists()
    bad = CliRunner().invoke(
        main, ["export", "--rollup", str(rollup), "--period", "2w", "-o", str(tmp_path / "x.csv")]
    )
    assert bad.exit_code == 2
    assert "unknown period '2w'" in bad.output
    assert not (tmp_path / "x.csv").exists()
    missing = CliRunner().invoke(
        main, ["export", "--rollup", str(tmp_path / "nope.db"), "-o", str(tmp_path / "y.csv")]
    )
    assert missing.exit_code == 1
    assert "does not exist" in missing.output


def test_cli_report_prints_json_like_the_api(rollup):
    result = CliRunner().invoke(main, ["report", "--rollup", str(rollup), "--section", "costs", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)["data"]
    assert data["breakdown"]["team"][0]["team"] == "search"
    text = CliRunner().invoke(main, ["report", "--rollup", str(rollup), "--section", "costs"])
    assert text.exit_code == 0
    assert text.output.startswith("costs for 7d")


def test_api_key_command_prints_a_working_config_entry(tmp_path):
    result = CliRunner().invoke(main, ["api-key", "--name", "ci", "--scope", "team:search"])
    assert result.exit_code == 0
    key = result.output.split("shown once): ")[1].split()[0]
    entry = json.loads(result.output.split("- ", 1)[1])
    app = create_app({"rollup_path": str(tmp_path / "r.db"), "api_keys": [entry]}, environ={})
    ok = app.test_client().get("/api/analytics", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200
    assert ok.get_json()["query"]["filters"] == {"team": "search"}
    bad = CliRunner().invoke(main, ["api-key", "--name", "x", "--scope", "everyone"])
    assert bad.exit_code == 2
    assert "must be admin, alerts" in bad.output


def alertmanager_payload(status: str = "firing") -> dict:
    return {
        "version": "4",
        "status": status,
        "receiver": "budget-critical",
        "groupKey": '{}:{alertname="NexusBudgetCritical"}',
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": "NexusBudgetCritical",
                    "severity": "critical",
                    "nexus_team": "search",
                },
                "annotations": {"summary": "search at 95% of budget"},
                "startsAt": "2026-11-03T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "abc123",
            }
        ],
    }


def test_alert_inbox_stores_each_notification_once(tmp_path):
    client = create_app(app_settings(tmp_path / "r.db")).test_client()
    for _ in range(3):  # Alertmanager repeats a firing group every repeat_interval
        assert (
            client.post("/alerts", json=alertmanager_payload(), headers=auth("alerts")).get_json()["stored"]
            == 1
        )
    client.post("/alerts", json=alertmanager_payload("resolved"), headers=auth("alerts"))
    alerts = client.get("/api/alerts", headers=auth("admin")).get_json()["data"]["alerts"]
    assert [(a["alertname"], a["status"]) for a in alerts] == [
        ("NexusBudgetCritical", "resolved"),
        ("NexusBudgetCritical", "firing"),
    ]
    firing = client.get("/api/alerts?status=firing", headers=auth("team-search")).get_json()["data"]["alerts"]
    assert firing[0]["labels"]["nexus_team"] == "search"
    assert firing[0]["annotations"]["summary"]
    assert client.get("/api/alerts", headers=auth("user-alice")).status_code == 403
    assert client.post("/alerts", json=alertmanager_payload(), headers=auth("team-search")).status_code == 403


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.update(version="3"), "unsupported webhook version"),
        (lambda p: p.update(alerts=[]), "non-empty list"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "fingerprint must be"),
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alertname is missing"),
        (lambda p: p["alerts"][0].update(status="pending"), "firing or resolved"),
    ],
)
def test_bad_alert_payloads_get_400_and_store_nothing(tmp_path, mutate, message):
    rollup = tmp_path / "r.db"
    client = create_app(app_settings(rollup)).test_client()
    payload = alertmanager_payload()
    mutate(payload)
    response = client.post("/alerts", json=payload, headers=auth("alerts"))
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]
    assert sqlite3.connect(rollup).execute("SELECT COUNT(*) FROM alert_notifications").fetchone()[0] == 0


def test_metrics_exposes_user_gauges_from_the_rollup(client):
    mau = ("nexus_insights_active_users", frozenset({("window", "mau")}))

    # a scrape answers with the previous refresh's gauges; the first waits for its refresh only
    # so long, which a loaded machine can exceed: scrape until a refresh has landed
    got = wait_until(
        lambda: (g := Scrape(client.get("/metrics").get_data(as_text=True))) and mau in g.samples and g,
        timeout_s=120,
        what="the insight gauges",
        interval_s=0.5,
    )
    assert got.samples[mau] == len(HOSTILE)
    assert got.value("nexus_insights_feature_adoption_ratio", {"feature": "chat"}) == 1.0
    assert ("nexus_recommendations_monthly_savings_usd", frozenset()) in got.samples
    assert not any(
        name == "nexus_recommender_insight_errors_total" and value for (name, _), value in got.samples.items()
    )
