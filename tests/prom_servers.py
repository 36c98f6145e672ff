"""Real Prometheus and Alertmanager for tests, on free loopback ports, stopped by pid.

Also a webhook receiver (a plain ``http.server`` in a thread) standing in for whatever
Alertmanager notifies, and a helper to backfill history with ``promtool``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ManagedProcess",
    "WebhookReceiver",
    "backfill_openmetrics",
    "free_port",
    "start_alertmanager",
    "start_prometheus",
    "wait_until",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class ManagedProcess:
    """A server we started; ``stop()`` ends exactly this pid."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_json(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _start(name: str, args: list[str], *, url: str, workdir: Path, timeout_s: float) -> ManagedProcess:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    managed = ManagedProcess(name, process, url, log_path)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{managed.log()}")
        return _ready(url)

    try:
        wait_until(up, timeout_s=timeout_s, what=f"{name} to be ready")
    except BaseException:
        managed.stop()
        raise
    return managed


def start_prometheus(*, config: dict[str, Any], workdir: Path, timeout_s: float = 30) -> ManagedProcess:
    """Prometheus with ``config`` (rule file paths may be absolute) and its own TSDB in ``workdir``."""
    port = free_port()
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    tsdb = workdir / "tsdb"
    tsdb.mkdir(exist_ok=True)
    args = [
        "prometheus",
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tsdb}",
        # Backfilled history may be weeks old.
        "--storage.tsdb.retention.time=60d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    return _start("prometheus", args, url=f"http://127.0.0.1:{port}", workdir=workdir, timeout_s=timeout_s)


def start_alertmanager(*, config: dict[str, Any], workdir: Path, timeout_s: float = 30) -> ManagedProcess:
    """Alertmanager as a single node (no cluster port) with ``config``."""
    port = free_port()
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = workdir / "alertmanager-data"
    storage.mkdir(exist_ok=True)
    args = [
        "prometheus-alertmanager",
        f"--config.file={config_path}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return _start("alertmanager", args, url=f"http://127.0.0.1:{port}", workdir=workdir, timeout_s=timeout_s)


def backfill_openmetrics(text: str, *, tsdb: Path, workdir: Path) -> None:
    """Write OpenMetrics ``text`` (ending in ``# EOF``) as TSDB blocks into ``tsdb`` before start."""
    source = workdir / "backfill.om"
    source.write_text(text)
    tsdb.mkdir(exist_ok=True)
    out = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(tsdb)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {out.stdout}{out.stderr}")


@dataclass
class WebhookReceiver:
    """Collects Alertmanager webhook notifications posted to ``url``."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/alerts"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification, with the notification's receiver added."""
        with self._lock:
            return [{**alert, "receiver": n["receiver"]} for n in self.notifications for alert in n["alerts"]]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
