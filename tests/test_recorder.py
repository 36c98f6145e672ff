"""The recorder prices each call once and produces the metric contract, checked by scraping /metrics."""

from __future__ import annotations

import subprocess
import threading

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server

from nexus_otel import semconv as sc
from nexus_otel.aggregate import AggregatingMetrics
from nexus_otel.record import CallRecord
from nexus_otel.recorder import Recorder
from nexus_otel.sink import EventSink
from nexus_otel.usage import Usage
from tests.prom_servers import wait_until
from tests.scrape import Scrape, scrape

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class KeepEvents:
    """An event exporter that keeps what it is given (a user-pluggable exporter)."""

    def __init__(self) -> None:
        self.events: list = []

    def export(self, batch):
        self.events.extend(batch)

    def shutdown(self):
        return None


def _call(**overrides) -> CallRecord:
    fields = {
        "model": "gpt-test",
        "provider": "openai",
        "start_time": T0,
        "duration_s": 0.5,
        "usage": Usage(input_tokens=1000, output_tokens=300, cache_read_tokens=400, reasoning_tokens=100),
        "team": "support",
        "project": "helpdesk",
        "feature": "summary",
        "request_id": "req-1",
        "user_id": "user-1",
    }
    fields.update(overrides)
    return CallRecord(**fields)


def test_one_call_produces_exact_series(telemetry):
    telemetry.recorder.record_call(_call())
    s = scrape(telemetry.prometheus_url)
    labels = {"gen_ai_request_model": "gpt-test", "nexus_team": "support", "nexus_feature": "summary"}
    assert (
        s.value("gen_ai_client_operation_duration_seconds_count", {**labels, "nexus_outcome": "success"}) == 1
    )
    assert s.value("gen_ai_client_operation_duration_seconds_sum", labels) == 0.5
    # 0.5 s falls in the (0.32, 0.64] bucket: not in le=0.32, in le=0.64.
    assert s.value("gen_ai_client_operation_duration_seconds_bucket", {**labels, "le": "0.32"}) == 0
    assert s.value("gen_ai_client_operation_duration_seconds_bucket", {**labels, "le": "0.64"}) == 1
    assert s.value("gen_ai_client_token_usage_sum", {**labels, "gen_ai_token_type": "input"}) == 1000
    assert s.value("gen_ai_client_token_usage_sum", {**labels, "gen_ai_token_type": "output"}) == 300
    assert s.value("nexus_tokens_detailed_total", {**labels, "nexus_token_type": "cache_read"}) == 400
    assert s.value("nexus_tokens_detailed_total", {**labels, "nexus_token_type": "reasoning"}) == 100
    # 600 uncached input x $2/M, 400 cached x $1/M, 200 visible output x $8/M, 100 reasoning x $8/M.
    assert s.value("nexus_cost_usd_total", {**labels, "nexus_cost_type": "input"}) == pytest.approx(
        0.0012, abs=1e-12
    )
    assert s.value("nexus_cost_usd_total", {**labels, "nexus_cost_type": "cache_read"}) == pytest.approx(
        0.0004, abs=1e-12
    )
    assert s.value("nexus_cost_usd_total", {**labels, "nexus_cost_type": "output"}) == pytest.approx(
        0.0016, abs=1e-12
    )
    assert s.value("nexus_cost_usd_total", {**labels, "nexus_cost_type": "reasoning"}) == pytest.approx(
        0.0008, abs=1e-12
    )
    assert s.value("nexus_cost_usd_total", labels) == pytest.approx(0.004, abs=1e-12)
    assert "user-1" not in s.text  # user ids never become labels
    assert s.value("target_info", {"service_name": "test-app", "service_instance_id": "test-instance"}) == 1


def test_failed_call_is_counted_with_error_type_and_no_tokens(telemetry):
    telemetry.recorder.record_call(_call(usage=None, error_type="RateLimitError", duration_s=0.02))
    s = scrape(telemetry.prometheus_url)
    assert (
        s.value(
            "gen_ai_client_operation_duration_seconds_count",
            {"error_type": "RateLimitError", "nexus_outcome": "error"},
        )
        == 1
    )
    assert "gen_ai_client_token_usage_count" not in s.names()
    assert "nexus_cost_usd_total" not in s.names()


def test_unknown_model_gets_no_cost_and_a_pricing_miss(telemetry):
    telemetry.recorder.record_call(_call(model="mystery-1"))
    s = scrape(telemetry.prometheus_url)
    assert s.value("nexus_pricing_misses_total", {"gen_ai_request_model": "mystery-1"}) == 1
    assert s.value("nexus_cost_usd_total", default=0.0) == 0.0
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 1000


def test_router_savings_are_baseline_minus_actual(telemetry):
    usage = Usage(input_tokens=1000, output_tokens=100)
    telemetry.recorder.record_call(
        _call(usage=usage, routed=True, baseline_model="gpt-test-big", router_confidence=0.83)
    )
    telemetry.recorder.record_call(_call(usage=usage, baseline_model="gpt-test", router_confidence=0.4))
    s = scrape(telemetry.prometheus_url)
    actual_routed = s.value("nexus_cost_usd_total", {"nexus_routed": "true"})
    baseline = s.value(
        "nexus_router_baseline_cost_usd_total", {"nexus_router_baseline_model": "gpt-test-big"}
    )
    assert actual_routed == pytest.approx(1000 * 2e-6 + 100 * 8e-6)
    assert baseline == pytest.approx(1000 * 10e-6 + 100 * 40e-6)
    assert baseline - actual_routed == pytest.approx(0.0112)
    assert s.value("nexus_router_decisions_total", {"nexus_routed": "true"}) == 1
    assert s.value("nexus_router_decisions_total", {"nexus_routed": "false"}) == 1
    assert s.value("nexus_router_confidence_count") == 2
    assert s.value("nexus_router_confidence_bucket", {"le": "0.4"}) == 1
    assert s.value("nexus_router_confidence_bucket", {"le": "0.9"}) == 2


def test_label_values_past_the_cap_fold_into_other_and_are_counted(tmp_path, monkeypatch):
    import nexus_otel

    monkeypatch.chdir(tmp_path)
    t = nexus_otel.configure(prometheus_port=0, max_label_values=3, label_caps={sc.FEATURE: 2})
    try:
        for i in range(5):
            t.recorder.record_call(_call(feature=f"feature-{i}", usage=None))
        s = scrape(t.prometheus_url)
        features = {
            ls.get("nexus_feature") for ls in s.series("gen_ai_client_operation_duration_seconds_count")
        }
        assert features == {"feature-0", "feature-1", "other"}
        assert s.value("gen_ai_client_operation_duration_seconds_count", {"nexus_feature": "other"}) == 3
        assert s.value("nexus_labels_folded_total", {"nexus_label": "nexus.feature"}) == 3
    finally:
        nexus_otel.shutdown()


@pytest.mark.parametrize("deferred", [False, True], ids=["recorded-on-call", "deferred"])
def test_events_carry_every_field_and_feedback_inherits_the_call(test_prices, deferred):
    kept = KeepEvents()
    recorder = Recorder(
        metrics=AggregatingMetrics(),
        prices=test_prices,
        # Deferred: nothing but the feedback itself records the queued call before it.
        events=EventSink([kept], batch_size=1000, flush_interval_s=600),
        deferred=deferred,
    )
    recorder.record_call(
        _call(
            session_id="s-1",
            ttft_s=0.1,
            streamed=True,
            routed=True,
            baseline_model="gpt-test-big",
            router_confidence=0.9,
        )
    )
    recorder.record_feedback(request_id="req-1", score=0.25, comment_length=12)
    recorder.events.flush(5)
    call, feedback = kept.events
    assert call.name == sc.EVENT_MODEL_CALL
    assert (call.user_id, call.session_id, call.team, call.project, call.feature) == (
        "user-1",
        "s-1",
        "support",
        "helpdesk",
        "summary",
    )
    assert (call.input_tokens, call.output_tokens, call.cache_read_tokens, call.reasoning_tokens) == (
        1000,
        300,
        400,
        100,
    )
    assert call.cost_usd == pytest.approx(0.004)
    assert call.baseline_cost_usd == pytest.approx(600 * 10e-6 + 400 * 5e-6 + 300 * 40e-6)
    assert (call.routed, call.routed_from, call.router_confidence, call.ttft_s, call.streamed) == (
        True,
        "gpt-test-big",
        0.9,
        0.1,
        True,
    )
    assert (feedback.request_id, feedback.score, feedback.model, feedback.user_id, feedback.team) == (
        "req-1",
        0.25,
        "gpt-test",
        "user-1",
        "support",
    )
    assert feedback.comment_length == 12


class ExplodingPrices:
    """A user-supplied price table that is broken."""

    def cost(self, **_kwargs):
        raise RuntimeError("price service down")


def test_failure_inside_recording_is_swallowed_counted_and_logged_once(caplog):
    metrics = AggregatingMetrics()
    recorder = Recorder(metrics=metrics, prices=ExplodingPrices(), events=EventSink([]))
    for _ in range(3):
        recorder.record_call(_call())  # must not raise
    snap = metrics.snapshot()
    assert snap.counters[sc.INSTRUMENTATION_ERRORS.name] == {((sc.ERROR_STAGE, "record_call"),): 3.0}
    assert sum("failed while recording" in r.message for r in caplog.records) == 1


def _api_path_scrape(prices, calls) -> Scrape:
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry)],
        resource=Resource.create({"service.name": "test-app", "service.instance.id": "test-instance"}),
    )
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        recorder = Recorder(meter_provider=provider, prices=prices, events=EventSink([]))
        for call in calls:
            recorder.record_call(call)
        return scrape(f"http://127.0.0.1:{server.server_address[1]}/metrics")
    finally:
        server.shutdown()
        provider.shutdown()


def test_api_path_and_configure_path_expose_identical_series(telemetry, test_prices):
    calls = [
        _call(),
        _call(
            request_id="req-2",
            ttft_s=0.2,
            streamed=True,
            routed=True,
            baseline_model="gpt-test-big",
            router_confidence=0.7,
        ),
        _call(
            request_id="req-3",
            usage=None,
            error_type="TimeoutError",
            model="claude-test",
            provider="anthropic",
        ),
        _call(request_id="req-4", model="mystery"),
    ]
    for call in calls:
        telemetry.recorder.record_call(call)
    fast = scrape(telemetry.prometheus_url)
    api = _api_path_scrape(test_prices, calls)
    ours = {
        k: v for k, v in fast.samples.items() if not k[0].startswith(("nexus_events_queued", "target_info"))
    }
    theirs = {k: v for k, v in api.samples.items() if not k[0].startswith("target_info")}
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        assert theirs[key] == pytest.approx(value), key
    assert fast.types == {**api.types, "nexus_events_queued": "gauge"}


def test_concurrent_recording_loses_no_measurement(telemetry):
    def work():
        for _ in range(500):
            telemetry.recorder.record_call(_call(usage=Usage(input_tokens=10, output_tokens=1)))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = scrape(telemetry.prometheus_url)
    assert s.value("gen_ai_client_operation_duration_seconds_count") == 4000
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 40000


def test_scraped_text_passes_promtool_check_metrics(telemetry):
    r = telemetry.recorder
    r.record_call(_call(ttft_s=0.05, routed=True, baseline_model="gpt-test-big", router_confidence=0.5))
    r.record_call(_call(model="mystery", request_id="x"))
    r.record_feedback(request_id="req-1", score=1.0)
    r.record_revenue(user_id="user-1", amount_usd=20.0, plan="pro")
    r.record_feature_use(feature="summary")
    r.record_session(session_id="s", state="started")
    text = scrape(telemetry.prometheus_url).text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_free_baseline_model_is_a_baseline_cost_of_zero_not_the_actual_cost(tmp_path):
    from nexus_otel.pricing import PriceTable

    prices_file = tmp_path / "prices.yaml"
    prices_file.write_text(
        "models:\n"
        "  - {provider: openai, model: paid, effective_from: 2024-01-01, input: 1.0, output: 1.0}\n"
        "  - {provider: openai, model: free, effective_from: 2024-01-01, input: 0, output: 0}\n"
    )
    kept = KeepEvents()
    metrics = AggregatingMetrics()
    recorder = Recorder(
        metrics=metrics,
        prices=PriceTable.load(prices_file, include_builtin=False),
        events=EventSink([kept], flush_interval_s=0.05),
    )
    recorder.record_call(
        _call(model="paid", usage=Usage(input_tokens=10**6), routed=True, baseline_model="free")
    )
    recorder.events.flush(5)
    (event,) = kept.events
    assert (event.cost_usd, event.baseline_cost_usd) == (1.0, 0.0)
    (baseline_total,) = metrics.snapshot().counters[sc.ROUTER_BASELINE_COST.name].values()
    assert baseline_total == 0.0


def test_recording_after_restore_continues_the_restored_series(test_prices):
    """Series handles taken before restore() must not keep writing into the replaced series."""
    metrics = AggregatingMetrics()
    recorder = Recorder(metrics=metrics, prices=test_prices, events=EventSink([]))
    recorder.record_call(_call(ttft_s=0.1))
    taken = metrics.snapshot()
    recorder.record_call(_call(ttft_s=0.1))
    recorder.record_call(_call(ttft_s=0.1))
    metrics.restore(taken)
    recorder.record_call(_call(ttft_s=0.1))
    snap = metrics.snapshot()
    for name in (sc.OPERATION_DURATION.name, sc.TOKEN_USAGE.name, sc.TIME_TO_FIRST_CHUNK.name):
        assert {state.count for state in snap.histograms[name].values()} == {2}, name
    (cost_input,) = [v for k, v in snap.counters[sc.COST.name].items() if (sc.COST_TYPE, "input") in k]
    assert cost_input == pytest.approx(2 * 600 * 2e-6)
    (reasoning,) = [
        v
        for k, v in snap.counters[sc.TOKENS_DETAILED.name].items()
        if (sc.DETAILED_TOKEN_TYPE, "reasoning") in k
    ]
    assert reasoning == 200


def _counted_calls(metrics: AggregatingMetrics) -> int:
    snap = metrics.snapshot()
    return sum(state.count for state in snap.histograms[sc.OPERATION_DURATION.name].values())


def _deferred_recorder(prices, events: EventSink) -> Recorder:
    return Recorder(metrics=AggregatingMetrics(), prices=prices, events=events, deferred=True)


def test_a_deferred_call_is_in_the_next_read_of_the_metrics(test_prices):
    recorder = _deferred_recorder(
        test_prices, EventSink([KeepEvents()], batch_size=1000, flush_interval_s=600)
    )
    metrics = recorder.metrics
    for i in range(3):
        recorder.record_call(_call(request_id=f"r{i}"))
    assert _counted_calls(metrics) == 3
    recorder.record_call(_call(request_id="r3"))
    assert _counted_calls(metrics) == 4


def test_deferred_calls_reach_the_exporter_with_nothing_reading_or_flushing(test_prices):
    kept = KeepEvents()
    recorder = _deferred_recorder(test_prices, EventSink([kept], batch_size=3, flush_interval_s=600))
    for i in range(3):
        recorder.record_call(_call(request_id=f"r{i}"))
    wait_until(lambda: len(kept.events) == 3, timeout_s=10, what="the event thread to record and export")
    assert [e.request_id for e in kept.events] == ["r0", "r1", "r2"]
    recorder.events.shutdown()


def test_a_full_deferral_queue_is_recorded_by_the_caller_never_dropped(test_prices):
    recorder = _deferred_recorder(
        test_prices, EventSink([KeepEvents()], max_queue=3, batch_size=1000, flush_interval_s=600)
    )
    for i in range(2):
        recorder.record_call(_call(request_id=f"r{i}"))
    assert len(recorder._pending) == 2
    recorder.record_call(_call(request_id="r2"))
    assert len(recorder._pending) == 0  # the caller recorded the backlog: memory stays bounded
    assert _counted_calls(recorder.metrics) == 3
