"""Child processes of the demo: started with a log file, waited for, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Service", "free_port", "http_status", "nexus_command", "start_service"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def nexus_command(*args: str) -> list[str]:
    """``nexus-otel ARGS`` run by this interpreter (works in a venv without the script on PATH)."""
    return [sys.executable, "-m", "nexus_otel", *args]


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (each of our services flushes on it), SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def start_service(
    name: str,
    command: Sequence[str],
    *,
    url: str,
    ready_url: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Service:
    """Start ``command`` in its own process group; wait until ``ready_url`` answers 200."""
    log_path = workdir / f"{name}.log"
    child_env = {**os.environ, **(env or {})}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=child_env,
            start_new_session=True,  # Ctrl-C in the terminal reaches the demo, which stops us in order
        )
    service = Service(name, process, url, log_path)
    deadline = time.monotonic() + timeout_s
    while http_status(ready_url) != 200:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{service.log_tail()}")
        if time.monotonic() > deadline:
            service.stop()
            raise RuntimeError(f"{name} did not become ready within {timeout_s:.0f} s:\n{service.log_tail()}")
        time.sleep(0.1)
    return service
