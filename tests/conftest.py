"""Shared fixtures: a fresh SDK + Prometheus endpoint per test, scraped over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import nexus_otel
from nexus_otel.pricing import PriceTable

DATA = Path(__file__).parent / "data"


@pytest.fixture
def test_prices() -> PriceTable:
    return PriceTable.load(DATA / "test-prices.yaml", include_builtin=False)


@pytest.fixture
def telemetry(tmp_path, monkeypatch) -> Iterator[nexus_otel.telemetry.Telemetry]:
    """nexus_otel.configure() with an in-process /metrics endpoint on a free port and the test prices."""
    monkeypatch.chdir(tmp_path)
    for var in ("NEXUS_CONFIG", "NEXUS_PRICES_FILE", "NEXUS_PROMETHEUS_PORT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    t = nexus_otel.configure(
        prometheus_port=0,
        service_name="test-app",
        service_instance_id="test-instance",
        price_files=(str(DATA / "test-prices.yaml"),),
        event_flush_interval_s=0.05,
    )
    yield t
    nexus_otel.shutdown()
