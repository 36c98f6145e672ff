"""The committed dashboards and provisioning files are what Grafana needs to load them.

No Grafana server can be installed here, so these check the dashboard model by
structure (what file provisioning requires, the variables, the datasource
references, links) and that the committed JSON is exactly the generator's
output. ``tests/test_grafana_queries.py`` runs every query against Prometheus.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.grafana_stack import (
    DASHBOARDS,
    GRAFANA,
    PROVIDERS,
    generator,
    load_dashboards,
    panels,
    provisioned_datasource_uids,
)

BOARDS = load_dashboards()
EXPECTED = {
    "nexus-overview",
    "nexus-costs",
    "nexus-models",
    "nexus-router",
    "nexus-users",
    "nexus-anomalies",
}
DASHBOARD_FIELDS = {
    "annotations": dict,
    "editable": bool,
    "links": list,
    "panels": list,
    "refresh": str,
    "schemaVersion": int,
    "tags": list,
    "templating": dict,
    "time": dict,
    "timepicker": dict,
    "timezone": str,
    "title": str,
    "uid": str,
    "version": int,
}
PANEL_TYPES = {"stat", "timeseries", "bargauge", "table", "piechart", "gauge"}


def test_committed_json_is_the_generators_output() -> None:
    rendered = generator().render()
    assert sorted(rendered) == sorted(BOARDS), "run: python grafana/generate.py"
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} is stale: run python grafana/generate.py"


def test_generator_check_mode_agrees() -> None:
    done = subprocess.run(
        [sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_six_dashboards_with_unique_stable_uids() -> None:
    uids = [board["uid"] for board in BOARDS.values()]
    assert len(uids) == len(set(uids))
    assert set(uids) == EXPECTED
    titles = [board["title"] for board in BOARDS.values()]
    assert len(titles) == len(set(titles))
    for uid in uids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid), uid


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_has_the_fields_provisioning_needs(name: str) -> None:
    board = BOARDS[name]
    for field, kind in DASHBOARD_FIELDS.items():
        assert isinstance(board.get(field), kind), f"{name}: {field} missing or not {kind.__name__}"
    assert board["id"] is None, "provisioned dashboards must not carry a database id"
    assert board["refresh"] == "1m"
    assert "nexus-otel" in board["tags"]
    assert len(board["tags"]) >= 2
    assert board["time"]["to"] == "now"
    assert board["time"]["from"].startswith("now-")
    assert board["schemaVersion"] == generator().SCHEMA_VERSION
    assert board["editable"] is False  # the generator is the source; the provider forbids UI saves


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_variables_datasource_team_project_model(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert list(variables) == ["datasource", "team", "project", "model"]
    ds = variables["datasource"]
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"
    assert ds["current"]["value"] in provisioned_datasource_uids()
    labels = {"team": "nexus_team", "project": "nexus_project", "model": "gen_ai_request_model"}
    for var, label in labels.items():
        v = variables[var]
        assert v["type"] == "query"
        assert v["includeAll"] is True
        assert v["multi"] is True
        assert v["allValue"] == ".*"
        assert v["current"]["value"] == ["$__all"]
        assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert re.fullmatch(rf"label_values\(.+, {label}\)", v["query"]["query"]), v["query"]
        assert v["definition"] == v["query"]["query"]


def _datasource_ok(ref: object) -> bool:
    uids = provisioned_datasource_uids()
    return (
        isinstance(ref, dict)
        and ref.get("type") == "prometheus"
        and ref.get("uid") in {"${datasource}", *uids}
    )


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_has_a_query_on_the_provisioned_datasource(name: str) -> None:
    board = BOARDS[name]
    ids = []
    for panel in panels(board):
        title = panel.get("title")
        ids.append(panel["id"])
        assert title, f"{name}: panel {panel['id']} has no title"
        assert panel["type"] in PANEL_TYPES, f"{name} / {title}: type {panel['type']}"
        assert panel.get("description"), f"{name} / {title}: no description"
        assert _datasource_ok(panel.get("datasource")), f"{name} / {title}: {panel.get('datasource')}"
        targets = panel.get("targets") or []
        assert targets, f"{name} / {title}: no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{name} / {title}: duplicate refIds"
        for t in targets:
            assert t.get("expr", "").strip(), f"{name} / {title} / {t['refId']}: empty expr"
            assert _datasource_ok(t.get("datasource")), f"{name} / {title} / {t['refId']}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0, f"{name} / {title}: {grid}"
        assert grid["x"] + grid["w"] <= 24, f"{name} / {title}: {grid}"
        assert grid["h"] > 0, f"{name} / {title}: {grid}"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{name} / {title}: no unit"
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_queries_filter_by_the_variables_their_series_carry(name: str) -> None:
    """Recorded series keyed by team/project/model are filtered by (at least) those variables."""
    keyed = {
        "team_project": ("$team", "$project"),
        "team_project_feature_provider_model": ("$team", "$project", "$model"),
        "team_project_provider_model": ("$team", "$project", "$model"),
        "provider_model": ("$model",),
        "team_project_model_baseline_routed": ("$team", "$project", "$model"),
        # model-level prices (cache savings) read these across teams on purpose
        "team_project_provider_model_token_type": ("$model",),
        "team_project_provider_model_detailed_token_type": ("$model",),
        "provider_model_cost_type": ("$model",),
        "provider_model_error_type": ("$model",),
        "provider_model_le": ("$model",),
    }
    for panel in panels(BOARDS[name]):
        for target in panel["targets"]:
            for match in re.finditer(r"\b([a-z_]+):[a-z_0-9]+:[a-z0-9_]+(\{[^}]*\})?", target["expr"]):
                level, selector = match.group(1), match.group(2) or ""
                for variable in keyed.get(level, ()):
                    assert variable in selector, (
                        f"{name} / {panel['title']}: {match.group(0)} lacks {variable}"
                    )


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_links_between_dashboards(name: str) -> None:
    board = BOARDS[name]
    tag_links = [link for link in board["links"] if link["type"] == "dashboards"]
    assert tag_links, f"{name}: no link to the other dashboards"
    for link in tag_links:
        assert "nexus-otel" in link["tags"]
        assert link["includeVars"]
        assert link["keepTime"]
    for panel in panels(board):
        for link in panel.get("links", []):
            uid = re.match(r"/d/([\w-]+)", link["url"])
            assert uid, f"{name} / {panel['title']}: {link['url']}"
            assert uid.group(1) in EXPECTED, f"{name} / {panel['title']}: {link['url']}"


def test_dashboard_json_is_plain_and_sorted() -> None:
    for name, board in BOARDS.items():
        text = (DASHBOARDS / name).read_text()
        assert text == json.dumps(board, indent=2, sort_keys=True) + "\n"


def test_datasource_provisioning() -> None:
    files = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
    assert files
    for path in files:
        doc = yaml.safe_load(path.read_text())
        assert doc["apiVersion"] == 1
        for ds in doc["datasources"]:
            assert {"name", "uid", "type", "url", "access"} <= set(ds), ds
    uids = provisioned_datasource_uids()
    assert uids == {generator().DATASOURCE_UID: "prometheus"}


def test_dashboard_provider_points_at_the_dashboards() -> None:
    files = sorted(PROVIDERS.glob("*.yml"))
    assert len(files) == 1
    doc = yaml.safe_load(files[0].read_text())
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/nexus-otel"
    assert provider["folder"] == "nexus-otel"
    compose = yaml.safe_load((GRAFANA.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
