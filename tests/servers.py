"""Our collector as a subprocess and a real Prometheus scraping it, for integration tests.

Both start on free loopback ports, are waited for with a bounded timeout and are
stopped by their own pid. Prometheus process handling comes from
``tests.prom_servers``; this module adds the scrape config and PromQL helpers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.prom_servers import ManagedProcess, free_port, wait_until
from tests.prom_servers import start_prometheus as _start_prometheus_process

__all__ = [
    "CollectorProcess",
    "PrometheusServer",
    "free_port",
    "start_collector",
    "start_prometheus",
    "wait_http",
    "wait_until",
]

REPO = Path(__file__).resolve().parent.parent


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_http(url: str, timeout: float = 30.0, *, status: int = 200) -> None:
    """Wait until ``url`` answers ``status``; fail after ``timeout`` seconds."""
    wait_until(lambda: _status(url) == status, timeout_s=timeout, what=f"{url} to answer {status}")


@dataclass
class CollectorProcess:
    """``nexus-otel collector`` running in its own process."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM (graceful: flushes) and wait; SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to flush (durability tests)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def start_collector(
    tmp_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    timeout: float = 30.0,
    ready_path: str = "/healthz",
) -> CollectorProcess:
    """``python -m nexus_otel collector --host 127.0.0.1 --port PORT ARGS`` with cwd ``tmp_path``.

    ``NEXUS_*`` variables of the test process are not inherited unless given in ``env``.
    """
    port = port or free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OTEL_"))}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    child_env.update(env or {})
    log_path = tmp_path / f"collector-{port}.log"
    command = [
        sys.executable,
        "-m",
        "nexus_otel",
        "collector",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=child_env)
    handle = CollectorProcess(process, f"http://127.0.0.1:{port}", log_path)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"collector exited with {process.returncode}:\n{handle.log()}")
        return _status(f"{handle.url}{ready_path}") == 200

    try:
        wait_until(up, timeout_s=timeout, what="the collector to answer")
    except BaseException:
        handle.stop()
        raise
    return handle


@dataclass
class PrometheusServer:
    """A running Prometheus; ``query`` runs instant PromQL over its HTTP API."""

    managed: ManagedProcess

    @property
    def url(self) -> str:
        return self.managed.url

    @property
    def pid(self) -> int:
        return self.managed.process.pid

    def log(self) -> str:
        return self.managed.log()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query: ``[{"metric": {...}, "value": [ts, "v"]}, ...]``."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def values(self, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Result samples keyed by their sorted label pairs."""
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in self.query(promql)}

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        *,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``predicate(result)`` holds; returns that result."""
        found: list[list[dict[str, Any]]] = []

        def check() -> bool:
            result = self.query(promql)
            if predicate(result):
                found.append(result)
                return True
            return False

        wait_until(check, timeout_s=timeout, what=f"PromQL {promql!r} to match", interval_s=0.5)
        return found[0]

    def targets_up(self) -> bool:
        active = self.managed.get_json("/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        self.managed.stop()


def start_prometheus(
    tmp_path: Path,
    scrape_targets: Iterable[str],
    rule_files: Sequence[str | os.PathLike[str]] = (),
    *,
    scrape_interval: str = "1s",
    job_name: str = "collector",
    honor_labels: bool = True,
    alertmanagers: Sequence[str] = (),
    timeout: float = 30.0,
) -> PrometheusServer:
    """Prometheus scraping ``scrape_targets`` (``host:port`` or URLs) every ``scrape_interval``.

    ``honor_labels`` keeps the ``job``/``instance`` labels the collector derived from
    each sender's resource instead of renaming them ``exported_*``.
    """
    targets = [urllib.parse.urlsplit(t).netloc if "://" in t else t for t in scrape_targets]
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": job_name,
                "honor_labels": honor_labels,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    if rule_files:
        config["rule_files"] = [str(Path(p).resolve()) for p in rule_files]
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    workdir = tmp_path / f"prometheus-{free_port()}"
    workdir.mkdir(parents=True)
    return PrometheusServer(_start_prometheus_process(config=config, workdir=workdir, timeout_s=timeout))
