"""What every part of the collector benchmark shares: paths, targets, logging, the collector process."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EVENTS_PER_REQUEST = 512
TARGETS = {
    "e2e_events_per_s": 50_000,
    "rollup_vs_executemany_max_slowdown": 2.0,
    "metrics_render_min_speedup": 3.0,
    "rss_mb_at_100k_max": 300,
}
#: The issue's orientation figure for a bare ``executemany`` of event rows on its 2-core machine:
#: the e2e target is this share of it (50k / 550k), which lets a slower machine be judged too.
ISSUE_EXECUTEMANY_ROWS_PER_S = 550_000


def log(message: str) -> None:
    sys.stderr.write(f"[collector-bench] {message}\n")
    sys.stderr.flush()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --- the collector process ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """``python -m nexus_otel collector`` on a free loopback port; stopped by its own pid."""

    def __init__(self, workdir: Path, *args: str, timeout_s: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"collector-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OTEL_"))}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "nexus_otel", "collector", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning", *args]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}:\n{self.log()}")
            if self._status("/readyz") == 200:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"collector not ready after {timeout_s:.0f}s:\n{self.log()}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, http.client.HTTPException):
            return None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def children(self) -> list[int]:
        """Pids of the collector's child processes (its rollup committer)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    def committer_rss_mb(self) -> float:
        total = 0.0
        for pid in self.children():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        return total

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of the collector and of its committer process(es)."""
        return {"collector": _cpu_s(self.pid), "committer": sum(_cpu_s(pid) for pid in self.children())}

    def get(self, path: str) -> tuple[float, bytes]:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{self.url}{path}", timeout=300) as resp:
            body = resp.read()
        return time.perf_counter() - started, body

    def post(self, path: str, body: bytes) -> bytes:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, headers={"Content-Type": "application/x-protobuf"}
        )
        with urllib.request.urlopen(request, timeout=300) as resp:
            return resp.read()

    def stop(self, timeout_s: float = 120.0) -> int:
        """SIGTERM (graceful: commits what is spooled), SIGKILL if it does not end in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
