"""Prometheus rules and Alertmanager config: promtool/amtool clean, unit-tested, documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
RULE_FILES = sorted(p for p in RULES.glob("*.yml") if p.name != "alertmanager.yml")
TEST_FILES = sorted((RULES / "tests").glob("*.yml"))
ALERTMANAGER = RULES / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/nexus-otel/nexus-otel/blob/main/docs/runbooks.md#"
SEVERITIES = {"info", "warning", "critical"}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
needs_amtool = pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")


def _rules(kind: str) -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


def _alert_tests() -> list[dict]:
    return [
        case
        for path in TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def _github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_rule_files_exist():
    assert {p.name for p in RULE_FILES} == {"recording.yml", "budgets.yml", "anomalies.yml", "health.yml"}


@needs_promtool
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path):
    out = subprocess.run(
        ["promtool", "check", "rules", "--lint=all", "--lint-fatal", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(path):
    out = subprocess.run(
        ["promtool", "test", "rules", path.name], cwd=path.parent, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_file_is_unit_tested():
    tested = {
        (RULES / "tests" / f).resolve().name
        for path in TEST_FILES
        for f in yaml.safe_load(path.read_text())["rule_files"]
    }
    assert tested == {p.name for p in RULE_FILES}


def test_every_alert_is_labelled_and_documented():
    anchors = {
        _github_anchor(line.lstrip("#"))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    alerts = _rules("alert")
    assert alerts
    for rule in alerts:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert "for" in rule, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert "{{" in annotations["description"], f"{name}: description shows no values"
        url = annotations["runbook_url"]
        assert url == RUNBOOK_BASE + name.lower(), name
        assert url.rsplit("#", 1)[1] in anchors, f"{name}: no section in docs/runbooks.md"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases = _alert_tests()
    for name in {rule["alert"] for rule in _rules("alert")}:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name} never fires in rules/tests"
        assert any(not c.get("exp_alerts") for c in mine), f"{name} has no quiet case in rules/tests"
        for case in mine:
            for exp in case.get("exp_alerts") or []:
                assert exp.get("exp_annotations"), f"{name}: firing case does not check annotations"


def test_recording_rules_are_named_level_metric_operations_and_explained():
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            match = re.match(r"\s*- record: (\S+)$", line)
            if not match:
                continue
            name = match.group(1)
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name
            assert lines[i - 1].strip().startswith("#"), f"{path.name}: {name} has no comment"


def test_inhibited_budget_alerts_carry_every_label_inhibition_compares():
    """Labels missing on both sides count as equal in Alertmanager, so each must be present."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    equal = set().union(*(rule["equal"] for rule in config["inhibit_rules"]))
    budget_labels = equal - {"alertname"}
    assert budget_labels == {"nexus_team", "nexus_project", "gen_ai_request_model", "budget_scope"}
    budget_alerts = {r["alert"] for r in _rules("alert") if r["labels"].get("category") == "budget"}
    checked = 0
    for case in _alert_tests():
        if case["alertname"] in budget_alerts:
            for exp in case.get("exp_alerts") or []:
                assert budget_labels <= set(exp["exp_labels"]), exp
                checked += 1
    assert checked >= 5


@needs_amtool
def test_amtool_check_config():
    out = subprocess.run(["amtool", "check-config", str(ALERTMANAGER)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_amtool
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=NexusBudgetBurn", "severity=critical", "nexus_team=search"], "nexus-critical"),
        (["alertname=NexusBudgetBurn", "severity=warning", "nexus_team=search"], "nexus-warning"),
        (["alertname=NexusBudgetBurn", "severity=info", "nexus_team=search"], "nexus-info"),
        (["alertname=NexusCollectorDown", "severity=critical", "category=platform"], "nexus-platform"),
        (["alertname=Unrelated"], "nexus-default"),
    ],
)
def test_alertmanager_routes_by_category_and_severity(labels, receiver):
    out = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [receiver]


def test_every_receiver_is_a_webhook_to_the_documented_default():
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        hooks = receiver["webhook_configs"]
        assert [h["url"] for h in hooks] == ["http://127.0.0.1:8090/alerts"], receiver["name"]
        assert all(h["send_resolved"] for h in hooks)
