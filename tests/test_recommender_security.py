"""API keys, scoping and parameter validation: 401, 403, 400 with messages, and no leaks through any endpoint."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest
from recommender_traffic import KEYS, RecordedTraffic, app_settings, auth

from nexus_otel.clock import SimulatedClock
from recommender.app import create_app
from recommender.auth import hash_api_key
from recommender.config import ConfigError

T0 = datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()
NOW = T0 + 3 * 86400
GET_ENDPOINTS = (
    "/api/analytics",
    "/api/analytics/costs",
    "/api/analytics/models",
    "/api/insights/recommendations",
    "/api/anomalies",
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    rollup = tmp_path_factory.mktemp("security") / "rollup.db"
    with RecordedTraffic(rollup, start=T0) as traffic:
        for i in range(60):
            ts = T0 + i * 3000
            traffic.call(ts, user_id="alice", team="search", feature="chat", model="gpt-test")
            traffic.call(
                ts + 60, user_id="bob", team="support", feature="secret-feature", model="gpt-test-big"
            )
            traffic.call(
                ts + 120,
                user_id="mallory",
                team="search",
                feature="chat",
                model="claude-test",
                provider="anthropic",
            )
        traffic.revenue(T0 + 3600, "bob", 99.0, team="support")
    app = create_app(app_settings(rollup))
    with SimulatedClock(start=NOW):
        yield app.test_client()


def test_missing_and_bad_keys_get_401_on_every_endpoint(client):
    for path in (*GET_ENDPOINTS, "/api/alerts"):
        missing = client.get(path)
        assert missing.status_code == 401, path
        assert "Bearer" in missing.get_json()["error"]["message"]
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get(path, headers={"Authorization": "Bearer not-a-key-at-all"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.post("/api/analytics/export", json={"format": "csv"}).status_code == 401
    assert client.post("/alerts", json={}).status_code == 401


def test_health_and_metrics_need_no_key(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/metrics").status_code == 200


def _strings(body: object) -> str:
    return json.dumps(body)


def test_user_key_sees_only_its_own_rows_through_every_endpoint(client):
    for path in GET_ENDPOINTS:
        body = client.get(f"{path}?period=7d", headers=auth("user-alice")).get_json()
        assert body["success"], (path, body)
        assert body["query"]["filters"] == {"user_id": "alice"}
        text = _strings(body["data"])
        for leak in ("bob", "mallory", "secret-feature", "gpt-test-big", "claude-test", "support"):
            assert leak not in text, (path, leak)
    analytics = client.get("/api/analytics?period=7d", headers=auth("user-alice")).get_json()["data"][
        "metrics"
    ]
    assert analytics["usage"]["requests"] == 60
    assert analytics["business"]["revenue_usd"] == 0.0


def test_user_key_cannot_widen_its_scope_with_filters(client):
    for path in GET_ENDPOINTS:
        response = client.get(f"{path}?user_id=bob", headers=auth("user-alice"))
        assert response.status_code == 403, path
        assert "user_id=alice" in response.get_json()["error"]["message"]
    # other filters narrow within the scope and never reach another user's rows
    body = client.get("/api/analytics?team=support", headers=auth("user-alice")).get_json()
    assert body["data"]["metrics"]["usage"]["requests"] == 0
    export = client.post(
        "/api/analytics/export", json={"format": "csv", "team": "search"}, headers=auth("user-alice")
    )
    users = {row["user_id"] for row in csv.DictReader(io.StringIO(export.get_data(as_text=True)))}
    assert users == {"alice"}
    assert (
        client.post(
            "/api/analytics/export", json={"format": "csv", "user_id": "bob"}, headers=auth("user-alice")
        ).status_code
        == 403
    )


def test_team_key_sees_only_its_team(client):
    body = client.get("/api/analytics/costs?period=7d", headers=auth("team-search")).get_json()
    assert body["query"]["filters"] == {"team": "search"}
    assert [r["team"] for r in body["data"]["breakdown"]["team"]] == ["search"]
    assert {r["user_id"] for r in body["data"]["breakdown"]["user"]} == {"alice", "mallory"}
    assert client.get("/api/analytics?team=support", headers=auth("team-search")).status_code == 403
    export = client.post(
        "/api/analytics/export", json={"format": "json"}, headers=auth("team-search")
    ).get_json()
    assert {row["team"] for row in export["rows"]} == {"search"}
    assert export["row_count"] == 120
    # the alert inbox and anomaly scopes are filtered too
    assert client.get("/api/alerts", headers=auth("team-search")).status_code == 200


def test_admin_key_sees_everything(client):
    body = client.get("/api/analytics?period=7d", headers=auth("admin")).get_json()["data"]["metrics"]
    assert body["usage"]["requests"] == 180
    assert body["business"]["revenue_usd"] == 99.0


def test_alerts_key_only_posts_alerts(client):
    for path in GET_ENDPOINTS:
        assert client.get(path, headers=auth("alerts")).status_code == 403


BAD_PARAMETERS = [
    ("period=2w", "unknown period '2w'"),
    ("period=custom&from=2026-11-01", "needs both from= and to="),
    ("period=custom&from=yesterday&to=2026-11-02", "from='yesterday' is not a time"),
    ("period=custom&from=2026-11-03&to=2026-11-02", "must be after from"),
    ("period=custom&from=2020-01-01&to=2026-11-02", "at most 400 days"),
    ("period=7d&from=2026-11-01&to=2026-11-02", "go with period=custom"),
    ("colour=blue", "unknown parameter(s) colour"),
    ("team=", "filter team must be a non-empty string"),
    ("team=a&team=b", "given 2 times"),
    ("model=" + "x" * 300, "at most 256 characters"),
]


@pytest.mark.parametrize(("query", "message"), BAD_PARAMETERS)
def test_bad_parameters_get_400_with_a_message(client, query, message):
    for path in GET_ENDPOINTS:
        response = client.get(f"{path}?{query}", headers=auth("admin"))
        assert response.status_code == 400, (path, query)
        body = response.get_json()
        assert body["success"] is False
        assert message in body["error"]["message"]


BAD_EXPORTS = [
    ({"format": "xml"}, "format must be one of json, csv"),
    ({"format": "csv", "dataset": "minutely"}, "dataset must be one of"),
    ({"format": "csv", "includeInsights": True}, "includeInsights needs format json"),
    ({"format": "json", "includeInsights": "yes"}, "includeInsights must be true or false"),
    ({"format": "csv", "period": "1y"}, "unknown period"),
    ({"format": "csv", "team": ["a"]}, "team must be a string"),
    ({"format": "csv", "sql": "DROP TABLE model_calls"}, "unknown parameter(s) sql"),
]


@pytest.mark.parametrize(("body", "message"), BAD_EXPORTS)
def test_bad_export_requests_get_400(client, body, message):
    response = client.post("/api/analytics/export", json=body, headers=auth("admin"))
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]


def test_export_needs_a_json_body(client):
    response = client.post("/api/analytics/export", data="format=csv", headers=auth("admin"))
    assert response.status_code == 400
    assert "JSON body" in response.get_json()["error"]["message"]


def test_filter_values_are_parameters_not_sql(client):
    hostile = "search' OR '1'='1"
    body = client.get(f"/api/analytics?team={hostile}", headers=auth("admin")).get_json()
    assert body["data"]["metrics"]["usage"]["requests"] == 0


def test_misconfigured_keys_fail_at_startup(tmp_path):
    rollup = tmp_path / "r.db"
    with pytest.raises(ConfigError, match="plain keys are not accepted"):
        create_app(
            {"rollup_path": str(rollup), "api_keys": [{"name": "x", "hash": "hunter2", "scope": "admin"}]}
        )
    with pytest.raises(ConfigError, match="scope 'root' must be"):
        create_app(
            {
                "rollup_path": str(rollup),
                "api_keys": [{"name": "x", "hash": hash_api_key("k" * 20), "scope": "root"}],
            }
        )
    with pytest.raises(ConfigError, match="unknown recommender setting"):
        create_app({"rollup_path": str(rollup), "api_key": []})
    assert len(KEYS) == 4


def test_settings_layer_file_then_environment_then_arguments(tmp_path):
    config = tmp_path / "nexus.yaml"
    config.write_text(
        f"recommender:\n  rollup_path: {tmp_path / 'file.db'}\n  metrics_cache_s: 5\n  recommendations_top_n: 3\n"
    )
    env = {"NEXUS_RECOMMENDER_METRICS_CACHE_S": "7", "NEXUS_RECOMMENDER_CONFIG": str(config)}
    app = create_app({"recommendations_top_n": 4}, environ=env)
    settings = app.config["NEXUS"]
    assert settings["rollup_path"] == str(tmp_path / "file.db")
    assert (settings["metrics_cache_s"], settings["recommendations_top_n"]) == (7.0, 4)
    with pytest.raises(ConfigError, match="metrics_cache_s must be a number"):
        create_app({"rollup_path": str(tmp_path / "x.db"), "metrics_cache_s": "soon"}, environ={})
