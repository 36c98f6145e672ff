"""Anomaly detection end to end: four weeks of recorded daily-seasonal traffic, two injected incidents.

The traffic goes through the real decorators into a rollup (RecordedTraffic);
``/api/anomalies`` is read from the real app under a simulated clock standing at
the end of the data. The incidents: team "search" spends 10x the input tokens
for three hours (a cost spike), and claude-test is 8x slower for four hours (a
latency shift). Both must be flagged with the right scope and feature, nothing
else may be, and a copy of the traffic without incidents must flag nothing.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from recommender_traffic import RecordedTraffic, app_settings, auth

from nexus_otel.clock import SimulatedClock
from recommender.app import create_app
from recommender.insights.anomalies import DETECTORS, FEATURES, detect, refresh_if_stale
from recommender.store.reader import Rollup

HOUR = 3600
DAYS = 28
START = datetime(2026, 2, 2, tzinfo=timezone.utc).timestamp()
END = START + DAYS * 86400
#: team "search" sends 10x the input tokens: day 19, 14:00-17:00
COST_SPIKE = [START + 19 * 86400 + (14 + i) * HOUR for i in range(3)]
#: claude-test answers 8x slower: day 9, 09:00-13:00
LATENCY_SHIFT = [START + 9 * 86400 + (9 + i) * HOUR for i in range(4)]
MODELS = {"gpt-test": ("openai", 0.6), "claude-test": ("anthropic", 1.2)}
TEAMS = ("search", "support")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _record(path: Path, *, incidents: bool) -> Path:
    """Hourly traffic for 2 teams x 2 models: 1-4 calls each an hour on a daily curve, jittered, ~3% errors."""
    rng = random.Random(7)
    with RecordedTraffic(path, start=START) as traffic:
        for hour in range(DAYS * 24):
            h0 = START + hour * HOUR
            level = 1.0 + math.sin((hour % 24 - 8) / 24 * 2 * math.pi)  # 0..2, peak at 14:00
            for team in TEAMS:
                for model, (provider, latency) in MODELS.items():
                    for k in range(1 + round(level) + rng.randint(0, 1)):
                        tokens = int(1000 * rng.uniform(0.8, 1.2))
                        seconds = latency * rng.uniform(0.85, 1.15)
                        if incidents and team == "search" and h0 in COST_SPIKE:
                            tokens *= 10
                        if incidents and model == "claude-test" and h0 in LATENCY_SHIFT:
                            seconds *= 8
                        traffic.call(
                            h0 + 60 + k * 400 + rng.uniform(0, 60),
                            model=model,
                            provider=provider,
                            team=team,
                            input_tokens=tokens,
                            output_tokens=int(100 * rng.uniform(0.8, 1.2)),
                            latency_s=seconds,
                            error=rng.random() < 0.03,
                        )
    return path


@pytest.fixture(scope="module")
def incident_rollup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(tmp_path_factory.mktemp("incidents") / "rollup.db", incidents=True)


@pytest.fixture(scope="module")
def quiet_rollup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _record(tmp_path_factory.mktemp("quiet") / "rollup.db", incidents=False)


@pytest.fixture(scope="module")
def incident_report(incident_rollup: Path) -> dict[str, Any]:
    """The admin's 30-day report over the incident data (detection runs inside the request)."""
    return _get(incident_rollup, "/api/anomalies?period=30d", "admin")


def _get(rollup: Path, url: str, key: str, *, status: int = 200, **settings: object) -> dict[str, Any]:
    app = create_app(app_settings(rollup, **settings))
    with SimulatedClock(start=END):
        response = app.test_client().get(url, headers=auth(key))
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    return body["data"] if status == 200 else body


def _flagged(report: dict[str, Any], detector: str, scope: str) -> dict[str, dict[str, Any]]:
    return {
        a["window_start"]: a for a in report["anomalies"] if a["detector"] == detector and a["scope"] == scope
    }


@pytest.mark.parametrize("detector", DETECTORS)
def test_cost_spike_is_flagged_for_team_search_with_cost_named(
    incident_report: dict[str, Any], detector: str
) -> None:
    flagged = _flagged(incident_report, detector, "team:search")
    for t in COST_SPIKE:
        assert _iso(t) in flagged, f"{detector} missed the cost spike at {_iso(t)}: {sorted(flagged)}"
        anomaly = flagged[_iso(t)]
        assert anomaly["window_end"] == _iso(t + HOUR)
        assert anomaly["score"] > anomaly["threshold"]
        features = anomaly["features"]
        assert features["top_feature"] in ("cost_usd", "tokens_per_request")
        assert "cost_usd" in features["deviating"]
        assert features["z"]["cost_usd"] >= 4
        # the values explain it: about 8x the usual spend at that hour
        assert features["values"]["cost_usd"] > 4 * features["usual"]["cost_usd"]
    # the other team's spend was normal
    support = _flagged(incident_report, detector, "team:support")
    assert not [a for a in support.values() if "cost_usd" in a["features"]["deviating"]]


@pytest.mark.parametrize("detector", DETECTORS)
def test_latency_shift_is_flagged_for_the_slow_model_only(
    incident_report: dict[str, Any], detector: str
) -> None:
    flagged = _flagged(incident_report, detector, "model:claude-test")
    for t in LATENCY_SHIFT:
        assert _iso(t) in flagged, f"{detector} missed the latency shift at {_iso(t)}: {sorted(flagged)}"
        features = flagged[_iso(t)]["features"]
        assert features["top_feature"] == "latency_p95_s"
        assert features["z"]["latency_p95_s"] >= 4
        assert features["values"]["latency_p95_s"] > 4 * features["usual"]["latency_p95_s"]
    assert not [
        a
        for a in incident_report["anomalies"]
        if a["scope"] == "model:gpt-test" and a["features"]["top_feature"] == "latency_p95_s"
    ]


def test_nothing_is_flagged_outside_the_incidents(incident_report: dict[str, Any]) -> None:
    allowed = {_iso(t + d) for t in COST_SPIKE + LATENCY_SHIFT for d in (-HOUR, 0, HOUR)}
    stray = [
        (a["detector"], a["scope"], a["window_start"])
        for a in incident_report["anomalies"]
        if a["window_start"] not in allowed
    ]
    assert stray == []
    assert {a["detector"] for a in incident_report["anomalies"]} == set(DETECTORS)
    # both incidents also show in the "all" scope
    assert {_iso(t) for t in COST_SPIKE + LATENCY_SHIFT} <= set(_flagged(incident_report, "ecod", "all"))
    # every scope was scored: everything, both teams, both models
    scopes = {s["scope"] for s in incident_report["scopes"]}
    assert scopes == {"all", "team:search", "team:support", "model:gpt-test", "model:claude-test"}
    assert incident_report["last_run"]["scopes"] == 5
    assert incident_report["last_run"]["to"] == _iso(END)


def test_traffic_without_incidents_flags_nothing(quiet_rollup: Path) -> None:
    report = _get(quiet_rollup, "/api/anomalies?period=30d", "admin")
    assert report["anomalies"] == []
    assert len(report["scopes"]) == 5 * len(DETECTORS)
    assert not any(s["is_anomaly"] for s in report["scopes"])
    assert report["last_run"]["anomalies"] == 0


def test_every_scored_hour_is_stored(incident_rollup: Path, incident_report: dict[str, Any]) -> None:
    conn = sqlite3.connect(incident_rollup)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM anomaly_scores WHERE scope = 'team:search' AND detector = 'ecod'"
        ).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM anomaly_scores").fetchone()[0]
        runs = conn.execute("SELECT * FROM anomaly_runs ORDER BY id").fetchall()
    finally:
        conn.close()
    assert len(rows) == DAYS * 24
    assert total == 5 * len(DETECTORS) * DAYS * 24  # reruns upsert, never duplicate
    flagged = sorted(r["window_start"] for r in rows if r["is_anomaly"])
    assert {int(t) for t in COST_SPIKE} <= set(flagged)
    features = json.loads(rows[0]["features"])
    assert set(features["z"]) == set(FEATURES) == set(features["values"])
    assert runs
    assert json.loads(runs[-1]["detectors"]) == list(DETECTORS)
    assert runs[-1]["windows"] == 5 * len(DETECTORS) * DAYS * 24


def test_team_key_sees_only_its_team(incident_rollup: Path) -> None:
    report = _get(incident_rollup, "/api/anomalies?period=30d", "team-search")
    assert report["anomalies"], "the team's own cost spike should be visible"
    assert {a["scope"] for a in report["anomalies"]} == {"team:search"}
    assert {s["scope"] for s in report["scopes"]} == {"team:search"}
    # another team, or a model across teams, is out of reach
    _get(incident_rollup, "/api/anomalies?period=30d&team=support", "team-search", status=403)
    by_model = _get(incident_rollup, "/api/anomalies?period=30d&model=claude-test", "team-search")
    assert by_model["anomalies"] == []
    assert by_model["scopes"] == []
    assert "note" in by_model


def test_user_key_sees_no_shared_scope(incident_rollup: Path) -> None:
    report = _get(incident_rollup, "/api/anomalies?period=30d", "user-alice")
    assert report["anomalies"] == []
    assert report["scopes"] == []
    assert "user" in report["note"]


def test_filters_narrow_the_scopes(incident_rollup: Path) -> None:
    report = _get(
        incident_rollup, "/api/anomalies?period=30d&model=claude-test", "admin", anomaly_interval_s=86400
    )
    assert {a["scope"] for a in report["anomalies"]} == {"model:claude-test"}
    assert {s["scope"] for s in report["scopes"]} == {"model:claude-test"}
    # the default 7-day period ends after both incidents: nothing to show, but the latest scores are there
    recent = _get(incident_rollup, "/api/anomalies", "admin", anomaly_interval_s=86400)
    assert recent["anomalies"] == []
    assert len(recent["scopes"]) == 5 * len(DETECTORS)
    by_provider = _get(
        incident_rollup, "/api/anomalies?period=30d&provider=openai", "admin", anomaly_interval_s=86400
    )
    assert by_provider["anomalies"] == []
    assert "provider" in by_provider["note"]  # not computed per provider: say so rather than show everything


def test_refresh_runs_only_when_stale(quiet_rollup: Path) -> None:
    rollup = Rollup(quiet_rollup)

    def runs() -> int:
        return int(rollup.rows("SELECT COUNT(*) AS n FROM anomaly_runs")[0]["n"])

    refresh_if_stale(rollup, {"anomaly_interval_s": 0}, END)
    before = runs()
    refresh_if_stale(rollup, {"anomaly_interval_s": 3600}, END + 60)
    assert runs() == before  # fresh and the newest complete hour is scored
    refresh_if_stale(rollup, {"anomaly_interval_s": 86400}, END + HOUR + 60)
    assert runs() == before + 1  # a new complete hour was not scored yet
    refresh_if_stale(rollup, {"anomaly_interval_s": 0}, END + HOUR + 120)
    assert runs() == before + 2  # 0 means every time


def test_refresh_logs_instead_of_raising(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "not-a-database").mkdir()
    refresh_if_stale(Rollup(tmp_path / "not-a-database"), {"anomaly_interval_s": 0}, END)
    assert "anomaly detection failed" in caplog.text


def test_detect_one_scope_and_thin_scopes(incident_rollup: Path, tmp_path: Path) -> None:
    summary = detect(Rollup(incident_rollup), now=END, filters={"team": "search"})
    assert summary["scope_names"] == ["team:search"]
    assert summary["anomalies"] >= len(COST_SPIKE) * len(DETECTORS)
    with pytest.raises(ValueError, match="filters"):
        detect(Rollup(incident_rollup), now=END, filters={"project": "x"})
    # a day of traffic is too little to know what is usual: nothing is scored
    thin = tmp_path / "thin.db"
    with RecordedTraffic(thin, start=START) as traffic:
        for hour in range(20):
            traffic.call(START + hour * HOUR + 60, team="search")
    summary = detect(Rollup(thin), now=START + 2 * 86400)
    assert summary["scopes"] == 0
    assert summary["anomalies"] == 0


def test_stored_scores_are_exported_as_csv_within_the_keys_scope(
    incident_rollup: Path, incident_report: dict[str, Any]
) -> None:
    import csv
    import io

    app = create_app(app_settings(incident_rollup))
    body = {"format": "csv", "dataset": "anomalies", "period": "30d"}
    texts = {}
    with SimulatedClock(start=END):
        for key in ("admin", "team-search", "user-alice"):
            # a streamed response is read before the next request starts
            response = app.test_client().post("/api/analytics/export", json=body, headers=auth(key))
            texts[key] = response.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(texts["admin"])))
    flagged = {
        (r["detector"], r["scope"], r["time"].replace(".000Z", "Z")) for r in rows if r["is_anomaly"] == "1"
    }
    reported = {(a["detector"], a["scope"], a["window_start"]) for a in incident_report["anomalies"]}
    assert flagged == reported
    assert {r["top_feature"] for r in rows if r["is_anomaly"] == "1"} <= set(FEATURES)
    team_rows = list(csv.DictReader(io.StringIO(texts["team-search"])))
    assert team_rows
    assert {r["scope"] for r in team_rows} == {"team:search"}
    header = "detector,scope,time,window_start,window_end,score,threshold,is_anomaly,top_feature,top_z"
    assert texts["user-alice"].strip() == header  # a user key sees no shared scope
