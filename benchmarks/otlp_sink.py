"""A loopback OTLP/HTTP endpoint that accepts everything and counts it.

Stands in for the collector wherever a benchmark exports spans, log records
or nexus-otel events over OTLP/HTTP, in its own process so it takes no CPU time
from the measured one. Prints ``PORT <n>`` once listening; ``GET /counts``
answers with the number of requests per path and of log records received.
:class:`LoopbackSink` starts it as a child process and stops it by its pid.

    python benchmarks/otlp_sink.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["LoopbackSink", "main"]

_counts: dict[str, int] = {"log_records": 0}
_lock = threading.Lock()


def _log_records(body: bytes) -> int:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest.FromString(body)
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real collector: one connection per exporter

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        records = _log_records(body) if self.path == "/v1/logs" else 0
        with _lock:
            _counts[self.path] = _counts.get(self.path, 0) + 1
            _counts["log_records"] += records
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        with _lock:
            body = json.dumps(_counts).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


class LoopbackSink:
    """This script in a child process, on a free loopback port."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())], stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError("otlp_sink.py did not start")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/counts", timeout=5) as resp:
            return json.load(resp)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
