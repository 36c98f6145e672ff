"""Prometheus and Alertmanager for the demo: configs, history backfill, processes.

History goes in two passes, both with the official ``promtool``: the
OpenMetrics file from the backfill becomes TSDB blocks before Prometheus starts;
then ``promtool tsdb create-blocks-from rules`` evaluates ``recording.yml`` over
that history against the running Prometheus, and Prometheus is restarted to load
those blocks too. The anomaly bands compare today with the recorded series of
yesterday, so without the second pass they would have nothing to compare with.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .processes import Service, free_port, start_service

__all__ = [
    "Interrupted",
    "PrometheusSetup",
    "alertmanager_binary",
    "backfill_metrics",
    "backfill_recording_rules",
    "missing_binaries_hint",
    "recording_rule_levels",
    "start_alertmanager",
    "start_prometheus",
]

INSTALL_HINT = (
    "install them with 'sudo apt-get install prometheus prometheus-alertmanager' "
    "(Debian/Ubuntu) or download them from https://prometheus.io/download/"
)


def alertmanager_binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def missing_binaries_hint() -> str | None:
    """None when prometheus, promtool and Alertmanager are all on PATH, else what to do."""
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if alertmanager_binary() is None:
        missing.append("alertmanager")
    if not missing:
        return None
    names = ", ".join(missing)
    return f"{names} not found; the demo runs without them. To see rules and alerts, {INSTALL_HINT}."


@dataclass(frozen=True)
class PrometheusSetup:
    workdir: Path
    rule_files: tuple[Path, ...]
    scrape_targets: dict[str, str]  # job -> host:port; rules/health.yml expects "nexus-collector"
    scrape_interval_s: float = 15.0
    alertmanager: str | None = None  # host:port
    host: str = "127.0.0.1"

    @property
    def tsdb(self) -> Path:
        return self.workdir / "tsdb"

    def config(self) -> dict[str, Any]:
        interval = f"{self.scrape_interval_s:g}s"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(p.resolve()) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    # the collector names each sender's series by its service.name / instance id
                    "honor_labels": job == "nexus-collector",
                    "static_configs": [{"targets": [target]}],
                }
                for job, target in self.scrape_targets.items()
            ],
        }
        if self.alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]}
        return config


class Interrupted(Exception):
    """The demo was asked to stop (Ctrl-C) while a step was still running."""


def _run(args: list[str], what: str, *, stop: threading.Event | None = None) -> None:
    # its own session: a Ctrl-C in the terminal reaches only the demo, which sets ``stop``
    # and stops this step itself, instead of promtool dying and the step reporting a failure
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stop is not None and stop.is_set():
                    process.kill()
                    process.communicate()
                    raise Interrupted(what) from None
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(args[:4])} ...):\n{stdout[-2000:]}{stderr[-2000:]}")


def backfill_metrics(openmetrics: Path, tsdb: Path, *, stop: threading.Event | None = None) -> None:
    """TSDB blocks from the OpenMetrics history, written where Prometheus will start.

    ``stop`` set while promtool runs kills it and raises :class:`Interrupted`.
    """
    tsdb.mkdir(parents=True, exist_ok=True)
    args = ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)]
    _run(args, "backfill", stop=stop)


def recording_rule_levels(rules: Path, workdir: Path) -> list[Path]:
    """``rules``' recording rules split into files by dependency level, lowest first.

    ``promtool tsdb create-blocks-from rules`` evaluates every rule against the
    running Prometheus, which does not yet hold the output of the other rules: a
    rule built on another recorded series must wait until the blocks of that one
    are loaded. Level 0 reads only scraped series, level n reads level n-1.
    """
    doc = yaml.safe_load(rules.read_text()) or {}
    recorded = [
        (group.get("interval"), rule)
        for group in doc.get("groups", [])
        for rule in group.get("rules", [])
        if "record" in rule
    ]
    names = {rule["record"] for _, rule in recorded}
    deps = {
        rule["record"]: {n for n in names if re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", rule["expr"])}
        for _, rule in recorded
    }
    levels: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in levels:
            if name in seen:
                raise ValueError(f"recording rules depend on each other in a cycle through {name}")
            levels[name] = 1 + max((level(d, seen | {name}) for d in deps[name]), default=-1)
        return levels[name]

    by_level: dict[int, list[dict[str, Any]]] = {}
    for _, rule in recorded:
        by_level.setdefault(level(rule["record"]), []).append(
            {
                "record": rule["record"],
                "expr": rule["expr"],
                **({"labels": rule["labels"]} if "labels" in rule else {}),
            }
        )
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in sorted(by_level):
        path = workdir / f"recording-level-{n}.yml"
        path.write_text(
            yaml.safe_dump({"groups": [{"name": f"level-{n}", "rules": by_level[n]}]}, sort_keys=False)
        )
        paths.append(path)
    return paths


def backfill_recording_rules(
    *,
    prometheus_url: str,
    rules: Path,
    start: float,
    end: float,
    tsdb: Path,
    eval_interval_s: float,
    stop: threading.Event | None = None,
) -> None:
    """Blocks of the recording rules' results over [start, end], moved into ``tsdb`` (``stop`` as above)."""
    out = tsdb.parent / "rule-blocks"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _run(
        [
            "promtool", "tsdb", "create-blocks-from", "rules",
            f"--url={prometheus_url}", f"--start={int(start)}", f"--end={int(end)}",
            f"--output-dir={out}", f"--eval-interval={eval_interval_s:g}s", str(rules),
        ],
        "recording-rule backfill",
        stop=stop,
    )  # fmt: skip
    for block in out.iterdir():
        if block.is_dir():
            shutil.move(str(block), str(tsdb / block.name))
    shutil.rmtree(out, ignore_errors=True)


def start_prometheus(setup: PrometheusSetup, *, port: int | None = None, retention: str = "30d") -> Service:
    port = port or free_port(setup.host)
    setup.workdir.mkdir(parents=True, exist_ok=True)
    config_path = setup.workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(setup.config(), sort_keys=False))
    url = f"http://{setup.host}:{port}"
    return start_service(
        "prometheus",
        [
            "prometheus",
            f"--config.file={config_path}",
            f"--storage.tsdb.path={setup.tsdb}",
            f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address={setup.host}:{port}",
            "--web.enable-lifecycle",
        ],
        url=url,
        ready_url=f"{url}/-/ready",
        workdir=setup.workdir,
    )


def start_alertmanager(
    *,
    workdir: Path,
    config_file: Path,
    webhook_url: str | None,
    webhook_bearer: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> Service:
    """Alertmanager (single node) with ``config_file``; webhook receivers pointed at ``webhook_url``.

    ``webhook_bearer`` is sent as ``Authorization: Bearer`` (the recommender's
    inbox wants an ``alerts`` or admin key).
    """
    binary = alertmanager_binary()
    if binary is None:
        raise RuntimeError(f"Alertmanager not found; {INSTALL_HINT}")
    port = port or free_port(host)
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(config_file.read_text())
    if webhook_url:
        for receiver in config.get("receivers", []):
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = webhook_url
                hook.pop("http_config", None)  # the file's credentials_file is for docker compose
                if webhook_bearer:
                    hook["http_config"] = {"authorization": {"type": "Bearer", "credentials": webhook_bearer}}
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://{host}:{port}"
    return start_service(
        "alertmanager",
        [
            binary,
            f"--config.file={path}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address={host}:{port}",
            "--cluster.listen-address=",
        ],
        url=url,
        ready_url=f"{url}/-/ready",
        workdir=workdir,
    )
