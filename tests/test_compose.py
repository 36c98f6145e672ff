"""docker-compose.yml is valid, mounts only what the repository has, and its parts fit together.

No Docker engine runs here: ``docker-compose config`` (the OS package, Compose
1.29) validates the file, and the rest is checked by reading it: mounted paths,
pinned images, health checks, named volumes, the Prometheus configuration it
mounts (``promtool check config``) and the Dockerfile's inputs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus.yml"
ONE_SHOT = {"demo-history"}


def bind_mounts() -> list[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount."""
    out = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                out.append((name, source, target))
    return out


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr


def test_every_mounted_path_exists_in_the_repository() -> None:
    mounts = bind_mounts()
    assert mounts
    for service, source, _ in mounts:
        assert not source.startswith("/"), f"{service}: absolute host path {source}"
        assert (REPO / source).exists(), f"{service} mounts {source}, which is not in the repository"


def test_the_stack_has_every_service_mounting_what_it_needs() -> None:
    expected = {"collector", "recommender", "demo-traffic", "prometheus", "alertmanager", "grafana"}
    assert expected <= set(SERVICES)
    mounts = {(s, src, dst) for s, src, dst in bind_mounts()}
    assert ("prometheus", "./rules", "/etc/prometheus/rules") in mounts
    assert ("prometheus", "./deploy/prometheus.yml", "/etc/prometheus/prometheus.yml") in mounts
    assert ("alertmanager", "./rules/alertmanager.yml", "/etc/alertmanager/alertmanager.yml") in mounts
    assert ("grafana", "./grafana/provisioning", "/etc/grafana/provisioning") in mounts
    assert ("grafana", "./grafana/dashboards", "/var/lib/grafana/dashboards/nexus-otel") in mounts


def test_named_volumes_hold_the_rollup_and_the_tsdb() -> None:
    declared = set(COMPOSE["volumes"])

    def named(service: str) -> dict[str, str]:
        out = {}
        for volume in SERVICES[service].get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                assert source in declared, f"{service}: volume {source} is not declared"
                out[target] = source
        return out

    assert "/data" in named("collector")
    assert "--rollup=/data/rollup.db" in SERVICES["collector"]["command"]
    assert named("prometheus")["/prometheus"] == "prometheus-data"
    assert named("demo-history")["/prometheus"] == "prometheus-data"
    assert named("recommender")["/data"] == named("collector")["/data"]
    assert "/var/lib/grafana" in named("grafana")


def test_images_are_pinned_and_services_have_health_checks() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        assert image, f"{name}: no image"
        if "build" not in service:
            assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+){1,2}", image), f"{name}: image {image} is not pinned"
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        else:
            assert service.get("restart") == "no"


def test_dockerfile_copies_only_what_exists() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert all(re.search(r":v?\d", image) for image in froms), froms
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, flags=re.M):
        *sources, _dest = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which does not exist"
    # the images of the compose file and the Dockerfile's promtool come from the same release
    assert any(image == SERVICES["prometheus"]["image"] for image in [f.split(" ")[0] for f in froms])


def test_prometheus_config_loads_every_rule_file_and_passes_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    mounted = {Path(p).name for p in config["rule_files"]}
    in_repo = {p.name for p in (REPO / "rules").glob("*.yml")} - {"alertmanager.yml"}
    assert mounted == in_repo
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["nexus-collector"]["honor_labels"] is True  # rules/health.yml needs this job name
    services = set(SERVICES) | {"localhost"}
    for job in jobs.values():
        for target in job["static_configs"][0]["targets"]:
            assert target.split(":")[0] in services, f"{job['job_name']}: {target}"
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed")
    config["rule_files"] = [str(REPO / "rules" / Path(p).name) for p in config["rule_files"]]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    done = subprocess.run(["promtool", "check", "config", str(local)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_datasource_points_at_the_prometheus_service() -> None:
    path = REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", datasource["url"]).groups()
    assert host in SERVICES
    assert f"{port}:{port}" in SERVICES[host]["ports"]


def test_alertmanager_reaches_the_recommender_inbox_as_configured() -> None:
    """rules/alertmanager.yml posts to 127.0.0.1:8090; Alertmanager shares the recommender's network."""
    am = yaml.safe_load((REPO / "rules" / "alertmanager.yml").read_text())
    urls = {hook["url"] for r in am["receivers"] for hook in r.get("webhook_configs", [])}
    assert urls
    if all(url.startswith("http://127.0.0.1:8090/") for url in urls):
        assert SERVICES["alertmanager"]["network_mode"] == "service:recommender"
        assert "9093:9093" in SERVICES["recommender"]["ports"]
