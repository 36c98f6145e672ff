"""Bring-your-own instrumentation: the official OpenAI instrumentation's metrics land in our series.

A separate process runs ``opentelemetry-instrumentation-openai-v2`` on an
``openai`` client whose HTTP is an ``httpx.MockTransport`` (the only fake: the
remote model provider), exporting with the official OTLP/HTTP metric exporter
to a collector process. That instrumentation reports tokens under the older
``gen_ai.system`` attribute and no cost: the collector maps the attribute and
derives the cost from nexus-otel's price table, counting the unknown model as a
pricing miss.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nexus_otel import semconv
from nexus_otel.pricing import get_default_table
from nexus_otel.pricing.cost import usd
from tests.scrape import scrape
from tests.servers import start_collector, wait_until

pytestmark = pytest.mark.integration

PRICED_MODEL = "gpt-4o-mini-2024-07-18"
UNKNOWN_MODEL = "mystery-model-9000"

SENDER = textwrap.dedent(
    """
    import json, sys
    import httpx, openai
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    url = sys.argv[1]
    calls = json.loads(sys.argv[2])  # [[model, prompt_tokens, completion_tokens], ...]

    answers = iter(calls)  # calls are made in order, one request each

    def reply(request):
        model, prompt, completion = next(answers)
        return httpx.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        })

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{url}/v1/metrics"), export_interval_millis=60000)
    meters = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "byo-app", "service.instance.id": "byo-1"}))
    OpenAIInstrumentor().instrument(meter_provider=meters, tracer_provider=TracerProvider())
    client = openai.OpenAI(api_key="k", base_url="http://openai.test.invalid/v1", max_retries=0,
                           http_client=httpx.Client(transport=httpx.MockTransport(reply)))
    for model, _, _ in calls:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    assert meters.force_flush(10_000)
    meters.shutdown()
    """
)


def test_official_openai_instrumentation_gets_provider_label_and_derived_cost(tmp_path: Path) -> None:
    import json

    calls = [[PRICED_MODEL, 1000, 200], [PRICED_MODEL, 3000, 600], [UNKNOWN_MODEL, 50, 5]]
    collector = start_collector(tmp_path)
    try:
        script = tmp_path / "byo_sender.py"
        script.write_text(SENDER)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "NEXUS_"))}
        done = subprocess.run(
            [sys.executable, str(script), collector.url, json.dumps(calls)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        scraped = wait_until(
            lambda: _with_tokens(collector.url), timeout_s=10, what="token usage in /metrics"
        )
    finally:
        assert collector.stop() == 0, collector.log()

    sender = {"job": "byo-app", "instance": "byo-1", "gen_ai_provider_name": "openai"}
    priced = {**sender, "gen_ai_request_model": PRICED_MODEL}
    # gen_ai.system became gen_ai.provider.name: the same series our dashboards read
    assert scraped.value("gen_ai_client_token_usage_sum", {**priced, "gen_ai_token_type": "input"}) == 4000
    assert scraped.value("gen_ai_client_token_usage_sum", {**priced, "gen_ai_token_type": "output"}) == 800
    assert not [s for s in scraped.series("gen_ai_client_token_usage_count") if "gen_ai_system" in s]

    rates = get_default_table().lookup(provider="openai", model=PRICED_MODEL).rates
    assert scraped.value("nexus_cost_usd_total", {**priced, "nexus_cost_type": "input"}) == float(
        usd(4000, rates.input)
    )
    assert scraped.value("nexus_cost_usd_total", {**priced, "nexus_cost_type": "output"}) == float(
        usd(800, rates.output)
    )
    assert scraped.value("nexus_cost_usd_total", {"gen_ai_request_model": UNKNOWN_MODEL}, default=0.0) == 0.0
    assert scraped.value("nexus_pricing_misses_total", {**sender, "gen_ai_request_model": UNKNOWN_MODEL}) == 1
    assert scraped.types["nexus_cost_usd"] == "counter"
    assert semconv.COST.prometheus == "nexus_cost_usd_total"


def _with_tokens(url: str):
    scraped = scrape(f"{url}/metrics")
    return scraped if "gen_ai_client_token_usage_sum" in scraped.names() else None
