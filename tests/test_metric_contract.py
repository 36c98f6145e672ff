"""The metric contract as Prometheus scrapes it. Rules and dashboards depend on these names:
changing one is a breaking change and must change this file too."""

from __future__ import annotations

from nexus_otel import semconv as sc
from nexus_otel.record import CallRecord
from nexus_otel.usage import Usage
from tests.scrape import scrape

PINNED = {
    "gen_ai.client.operation.duration": ("histogram", "gen_ai_client_operation_duration_seconds"),
    "gen_ai.client.token.usage": ("histogram", "gen_ai_client_token_usage"),
    "gen_ai.client.operation.time_to_first_chunk": (
        "histogram",
        "gen_ai_client_operation_time_to_first_chunk_seconds",
    ),
    "nexus.tokens.detailed": ("counter", "nexus_tokens_detailed_total"),
    "nexus.cost.usd": ("counter", "nexus_cost_usd_total"),
    "nexus.router.baseline_cost.usd": ("counter", "nexus_router_baseline_cost_usd_total"),
    "nexus.router.decisions": ("counter", "nexus_router_decisions_total"),
    "nexus.router.confidence": ("histogram", "nexus_router_confidence"),
    "nexus.feature.usage": ("counter", "nexus_feature_usage_total"),
    "nexus.feedback.score": ("histogram", "nexus_feedback_score"),
    "nexus.revenue.usd": ("counter", "nexus_revenue_usd_total"),
    "nexus.sessions": ("counter", "nexus_sessions_total"),
    "nexus.pricing.misses": ("counter", "nexus_pricing_misses_total"),
    "nexus.events.dropped": ("counter", "nexus_events_dropped_total"),
    "nexus.labels.folded": ("counter", "nexus_labels_folded_total"),
    "nexus.events.queued": ("gauge", "nexus_events_queued"),
    "nexus.instrumentation.errors": ("counter", "nexus_instrumentation_errors_total"),
}

LABELS = {
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "nexus_feature",
    "nexus_team",
    "nexus_project",
    "nexus_outcome",
    "nexus_routed",
}


def test_every_spec_is_pinned_with_its_prometheus_name():
    assert {s.name: (s.kind, s.prometheus) for s in sc.METRICS} == PINNED


def test_semconv_names_come_from_the_conventions_package():
    assert sc.OPERATION_DURATION.name == "gen_ai.client.operation.duration"
    assert sc.PROVIDER == "gen_ai.provider.name"  # not the deprecated gen_ai.system
    assert sc.DURATION_BUCKETS[0] == 0.01
    assert sc.DURATION_BUCKETS[-1] == 81.92
    assert sc.TOKEN_BUCKETS[-1] == 67108864


def test_scraped_series_match_the_contract(telemetry):
    r = telemetry.recorder
    r.record_call(
        CallRecord(
            model="gpt-test",
            provider="openai",
            response_model="gpt-test",
            start_time=1_767_225_600.0,
            duration_s=1.0,
            ttft_s=0.2,
            streamed=True,
            usage=Usage(input_tokens=100, output_tokens=50, cache_read_tokens=20, reasoning_tokens=10),
            feature="f",
            team="t",
            project="p",
            routed=True,
            baseline_model="gpt-test-big",
            router_confidence=0.9,
            request_id="r1",
        )
    )
    r.record_call(
        CallRecord(model="unpriced", provider="openai", usage=Usage(input_tokens=1), error_type="X")
    )
    r.record_feedback(request_id="r1", score=0.5)
    r.record_revenue(user_id="u", amount_usd=1.0, plan="pro")
    r.record_feature_use(feature="f")
    r.record_session(session_id="s", state="started")
    s = scrape(telemetry.prometheus_url)
    for spec in sc.METRICS:
        if spec.name in ("nexus.events.dropped", "nexus.labels.folded", "nexus.instrumentation.errors"):
            continue  # only appear when something goes wrong; covered in test_recorder/test_sink
        kind, prom = PINNED[spec.name]
        expected = f"{prom}_bucket" if kind == "histogram" else prom
        assert expected in s.names(), spec.name
        assert s.types[prom.removesuffix("_total")] == kind
    duration_labels = set().union(
        *(ls.keys() for ls in s.series("gen_ai_client_operation_duration_seconds_count"))
    )
    assert duration_labels >= LABELS | {"error_type"}
    assert not any("user" in label or "session" in label for label in duration_labels)


def test_readme_metric_reference_is_generated_from_the_contract():
    from pathlib import Path

    from nexus_otel.reference import metric_reference

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("<!-- metric-reference -->\n", 1)[1].split("<!-- /metric-reference -->", 1)[0]
    assert section == metric_reference(), "regenerate with: python -m nexus_otel.reference"
