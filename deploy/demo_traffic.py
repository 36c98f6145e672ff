"""Live demo traffic for docker-compose.yml: the simulated AI app, exporting OTLP to the collector.

Calls arrive at ``NEXUS_DEMO_CALLS_PER_DAY`` following the simulator's daily
curve (the volume of the backfilled history), through the official OpenAI and
Anthropic clients on a mock transport, instrumented by nexus-otel. The OTLP
endpoint comes from ``OTEL_EXPORTER_OTLP_ENDPOINT``. Stops cleanly on SIGTERM.
Every 15 s it writes the number of calls made to ``HEARTBEAT`` (the compose
health check reads its age).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import nexus_otel
from nexus_otel.demo.live import LiveTraffic

HEARTBEAT = Path(os.environ.get("NEXUS_DEMO_HEARTBEAT", "/tmp/demo-traffic.heartbeat"))


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    nexus_otel.configure(
        service_name=os.environ.get("OTEL_SERVICE_NAME", "nexus-demo-app"),
        service_instance_id=os.environ.get("NEXUS_DEMO_INSTANCE", "demo-1"),
        export_interval_s=5.0,
        event_flush_interval_s=1.0,
    )
    traffic = LiveTraffic(calls_per_day=float(os.environ.get("NEXUS_DEMO_CALLS_PER_DAY", "20000")))
    traffic.start()
    print("demo traffic running; SIGTERM stops it", flush=True)
    while not stop.wait(15.0):
        HEARTBEAT.write_text(f"{time.time():.0f} {traffic.totals().calls}\n")
    traffic.stop()
    nexus_otel.shutdown()
    print(f"stopped after {traffic.totals().calls} calls", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
