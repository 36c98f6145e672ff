"""`nexus-otel demo` serves real metrics from simulated traffic and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.scrape import scrape

ROOT = Path(__file__).resolve().parent.parent
# Run the checkout's package even where it is not pip-installed.
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def test_demo_serves_metrics_and_exits_zero_on_sigint(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_otel", "demo", "--port", "0", "--rate", "50", "--summary-every", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        first = proc.stdout.readline()
        match = re.match(r"metrics:\s+(\S+)", first)
        assert match, first
        url = match.group(1)
        deadline = time.monotonic() + 30
        requests = 0.0
        while time.monotonic() < deadline and requests < 5:
            time.sleep(0.5)
            requests = scrape(url).value("gen_ai_client_operation_duration_seconds_count", default=0.0)
        s = scrape(url)
        assert requests >= 5
        assert s.value("nexus_cost_usd_total") > 0
        assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) > 0
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopping: flushing" in out
    assert re.search(r"requests \d+", out)


def test_demo_rejects_bad_arguments_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "demo", "--rate", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--rate" in result.stderr
