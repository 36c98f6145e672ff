"""track_model_call on every kind of callable, attribution scopes, and failure semantics."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import nexus_otel
from nexus_otel.tracking import current_call
from tests.providers import Provider, chat_chunks, chat_completion, sse
from tests.scrape import scrape

USAGE = {"prompt_tokens": 100, "completion_tokens": 20}


def _count(s, **labels):
    return s.value("gen_ai_client_operation_duration_seconds_count", labels, default=0.0)


def test_sync_function_returning_a_response_dict(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai", feature="f1")
    def call():
        return {"model": "gpt-4o-mini-2024-07-18", "usage": USAGE}

    assert call() == {"model": "gpt-4o-mini-2024-07-18", "usage": USAGE}
    s = scrape(telemetry.prometheus_url)
    assert _count(s, nexus_feature="f1", gen_ai_response_model="gpt-4o-mini-2024-07-18") == 1
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 100
    assert "gen_ai_client_operation_time_to_first_chunk_seconds_count" not in s.names()


async def test_async_function(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai")
    async def call():
        await asyncio.sleep(0)
        return {"usage": USAGE}

    await asyncio.gather(call(), call(), call())
    assert _count(scrape(telemetry.prometheus_url)) == 3


def test_sync_generator_reports_ttft_and_explicit_usage(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai")
    def tokens():
        yield "Hel"
        yield "lo"
        current_call().record_usage(input_tokens=30, output_tokens=2)

    assert list(tokens()) == ["Hel", "lo"]
    s = scrape(telemetry.prometheus_url)
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 30
    assert _count(s) == 1


async def test_async_generator_closed_early_records_once(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai")
    async def tokens():
        for word in ("a", "b", "c"):
            yield word

    agen = tokens()
    assert await agen.__anext__() == "a"
    await agen.aclose()
    s = scrape(telemetry.prometheus_url)
    assert _count(s, nexus_outcome="success") == 1
    assert _count(s) == 1


def test_function_returning_a_provider_stream_is_wrapped(telemetry):
    provider = Provider().reply(sse(chat_chunks(with_usage=True), named=False), stream=True)
    raw = provider.openai()

    @nexus_otel.track_model_call(model="gpt-4o", provider="openai", feature="chat")
    def ask():
        return raw.chat.completions.create(
            model="gpt-4o", messages=[], stream=True, stream_options={"include_usage": True}
        )

    stream = ask()
    assert _count(scrape(telemetry.prometheus_url)) == 0  # not finished until the stream ends
    with stream as s:
        chunks = list(s)
    assert len(chunks) == 5
    scraped = scrape(telemetry.prometheus_url)
    assert _count(scraped, nexus_feature="chat") == 1
    assert scraped.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 1200
    assert scraped.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


def test_context_manager_with_record_response_and_wrap_stream(telemetry):
    provider = (
        Provider().reply(chat_completion()).reply(sse(chat_chunks(with_usage=True), named=False), stream=True)
    )
    client = provider.openai()
    with nexus_otel.track_model_call(model="gpt-4o", provider="openai") as call:
        call.record_response(client.chat.completions.create(model="gpt-4o", messages=[]))
    with nexus_otel.track_model_call(model="gpt-4o", provider="openai") as call:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[], stream=True, stream_options={"include_usage": True}
        )
        assert len(list(call.wrap_stream(stream))) == 5
    s = scrape(telemetry.prometheus_url)
    assert _count(s) == 2
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 2400
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


async def test_async_context_manager(telemetry):
    async with nexus_otel.track_model_call(model="gpt-4o", provider="openai") as call:
        call.record_usage(input_tokens=10, output_tokens=5)
    assert (
        scrape(telemetry.prometheus_url).value(
            "gen_ai_client_token_usage_sum", {"gen_ai_token_type": "output"}
        )
        == 5
    )


class ProviderDown(Exception):
    pass


def test_the_callers_exception_propagates_unchanged_and_is_recorded(telemetry):
    original = ProviderDown("upstream 503")

    @nexus_otel.track_model_call(model="gpt-4o", provider="openai")
    def call():
        raise original

    with pytest.raises(ProviderDown) as err:
        call()
    assert err.value is original
    assert err.traceback[-1].name == "call"  # raised where the user raised it
    s = scrape(telemetry.prometheus_url)
    assert _count(s, error_type="ProviderDown", nexus_outcome="error") == 1


def test_exception_inside_context_manager_propagates(telemetry):
    with pytest.raises(TimeoutError), nexus_otel.track_model_call(model="gpt-4o", provider="openai"):
        raise TimeoutError
    assert _count(scrape(telemetry.prometheus_url), error_type="TimeoutError") == 1


def test_bad_usage_reported_by_the_user_is_dropped_not_raised(telemetry, caplog):
    with nexus_otel.track_model_call(model="gpt-4o", provider="openai") as call:
        call.record_usage(input_tokens=-5, output_tokens=1)
    assert _count(scrape(telemetry.prometheus_url)) == 1
    assert "dropped invalid usage" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "", "provider": "openai"}, "model"),
        ({"model": "m", "provider": None}, "provider"),
        ({"model": "m", "provider": "p", "routed": "yes"}, "routed"),
        ({"model": "m", "provider": "p", "routed": True}, "baseline_model"),
        ({"model": "m", "provider": "p", "router_confidence": 1.5}, "router_confidence"),
        ({"model": "m", "provider": "p", "team": 7}, "team"),
    ],
)
def test_misuse_fails_at_definition_time(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        nexus_otel.track_model_call(**kwargs)


def test_explicit_arguments_override_attribution(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai", team="explicit-team")
    def call():
        return {"usage": USAGE}

    with nexus_otel.attribution(team="ctx-team", project="ctx-project", feature="ctx-feature"):
        call()
    s = scrape(telemetry.prometheus_url)
    assert (
        _count(s, nexus_team="explicit-team", nexus_project="ctx-project", nexus_feature="ctx-feature") == 1
    )


def test_attribution_is_per_thread_and_copied_only_on_request(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai")
    def call():
        return {"usage": USAGE}

    def worker(team):
        with nexus_otel.attribution(team=team):
            for _ in range(50):
                call()

    threads = [threading.Thread(target=worker, args=(f"team-{i}",)) for i in range(4)]
    with nexus_otel.attribution(project="outer"):
        inherited = threading.Thread(target=contextvars.copy_context().run, args=(call,))
        plain = threading.Thread(target=call)
        for t in (*threads, inherited, plain):
            t.start()
        for t in (*threads, inherited, plain):
            t.join()
    s = scrape(telemetry.prometheus_url)
    for i in range(4):
        assert _count(s, nexus_team=f"team-{i}") == 50
    assert _count(s, nexus_project="outer") == 1  # only the thread given a copy of the context
    assert _count(s) == 202


async def test_attribution_across_gather_tasks(telemetry):
    @nexus_otel.track_model_call(model="gpt-4o-mini", provider="openai")
    async def call():
        await asyncio.sleep(0)
        return {"usage": USAGE}

    @nexus_otel.attribution(feature="search")
    async def search(user):
        with nexus_otel.attribution(user_id=user, team="growth"):
            await asyncio.sleep(0)
            await call()
            return nexus_otel.attribution.current()

    results = await asyncio.gather(*(search(f"u{i}") for i in range(10)))
    assert {r.user_id for r in results} == {f"u{i}" for i in range(10)}
    assert {(r.feature, r.team) for r in results} == {("search", "growth")}
    assert nexus_otel.attribution.current().user_id is None
    assert _count(scrape(telemetry.prometheus_url), nexus_feature="search", nexus_team="growth") == 10


def test_business_events_are_recorded(telemetry):
    with nexus_otel.track_model_call(
        model="gpt-4o-mini", provider="openai", feature="faq", team="support"
    ) as call:
        call.record_usage(input_tokens=10, output_tokens=5)
    nexus_otel.track_feedback(call.request_id, 4, scale=(1, 5), comment="useful")
    nexus_otel.track_feature("faq", team="support")
    nexus_otel.track_revenue("user-1", 20.0, "pro", team="support")
    with nexus_otel.session(user_id="user-1") as sid:
        assert nexus_otel.attribution.current().session_id == sid
    s = scrape(telemetry.prometheus_url)
    fb = {"gen_ai_request_model": "gpt-4o-mini", "nexus_feature": "faq", "nexus_team": "support"}
    assert s.value("nexus_feedback_score_count", fb) == 1
    assert s.value("nexus_feedback_score_sum", fb) == 0.75
    assert s.value("nexus_feature_usage_total", {"nexus_feature": "faq"}) == 1
    assert s.value("nexus_revenue_usd_total", {"nexus_plan": "pro", "nexus_team": "support"}) == 20.0
    assert s.value("nexus_sessions_total", {"nexus_session_state": "started"}) == 1
    assert s.value("nexus_sessions_total", {"nexus_session_state": "ended"}) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: nexus_otel.track_feedback("r", 7, scale=(1, 5)), "score"),
        (lambda: nexus_otel.track_feedback("r", 1, scale=(5, 1)), "scale"),
        (lambda: nexus_otel.track_revenue("u", float("nan")), "amount_usd"),
        (lambda: nexus_otel.track_feature(""), "feature"),
        (lambda: nexus_otel.track_feature("f", count=0), "count"),
    ],
)
def test_business_helpers_reject_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
