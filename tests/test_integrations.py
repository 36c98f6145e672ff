"""instrument_openai / instrument_anthropic on the official clients, checked by scraping /metrics."""

from __future__ import annotations

import anthropic
import openai
import pytest

import nexus_otel
from tests.providers import (
    RESPONSES_BODY,
    Provider,
    anthropic_events,
    anthropic_message,
    chat_chunks,
    chat_completion,
    sse,
)
from tests.scrape import scrape

MESSAGES = [{"role": "user", "content": "Say hello"}]


def _openai_numbers(s, **labels):
    return {
        "calls": s.value("gen_ai_client_operation_duration_seconds_count", labels, default=0.0),
        "input": s.value(
            "gen_ai_client_token_usage_sum", {**labels, "gen_ai_token_type": "input"}, default=0.0
        ),
        "output": s.value(
            "gen_ai_client_token_usage_sum", {**labels, "gen_ai_token_type": "output"}, default=0.0
        ),
        "cache_read": s.value(
            "nexus_tokens_detailed_total", {**labels, "nexus_token_type": "cache_read"}, default=0.0
        ),
        "reasoning": s.value(
            "nexus_tokens_detailed_total", {**labels, "nexus_token_type": "reasoning"}, default=0.0
        ),
        "cost": s.value("nexus_cost_usd_total", labels, default=0.0),
    }


# gpt-4o: $2.50 input, $1.25 cached, $10 output per 1M. 1200 prompt (1024 cached), 300 completion (120 reasoning).
GPT4O_COST = (176 * 2.5 + 1024 * 1.25 + 180 * 10 + 120 * 10) / 1e6


def test_chat_completion_is_recorded_once_with_exact_usage_and_cost(telemetry):
    provider = Provider().reply(chat_completion())
    client = nexus_otel.instrument_openai(provider.openai(), feature="greeting", team="support")
    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices[0].message.content == "Hello!"
    s = scrape(telemetry.prometheus_url)
    labels = {
        "gen_ai_request_model": "gpt-4o",
        "gen_ai_response_model": "gpt-4o-2024-08-06",
        "gen_ai_provider_name": "openai",
        "server_address": "api.openai.test",
        "nexus_feature": "greeting",
        "nexus_team": "support",
    }
    assert _openai_numbers(s, **labels) == {
        "calls": 1,
        "input": 1200,
        "output": 300,
        "cache_read": 1024,
        "reasoning": 120,
        "cost": pytest.approx(GPT4O_COST, abs=1e-12),
    }


def test_stream_without_stream_options_asks_for_usage_and_hides_the_extra_chunk(telemetry):
    provider = Provider().reply(sse(chat_chunks(with_usage=True), named=False), stream=True)
    client = nexus_otel.instrument_openai(provider.openai())
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert provider.requests[0]["stream_options"] == {"include_usage": True}
    assert len(chunks) == 4
    assert all(c.choices for c in chunks)  # the usage-only chunk never reaches the caller
    s = scrape(telemetry.prometheus_url)
    assert _openai_numbers(s)["input"] == 1200
    assert _openai_numbers(s)["cost"] == pytest.approx(GPT4O_COST, abs=1e-12)
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


def test_stream_with_callers_stream_options_is_left_alone(telemetry):
    provider = Provider().reply(sse(chat_chunks(with_usage=True), named=False), stream=True)
    client = nexus_otel.instrument_openai(provider.openai())
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) == 5
    assert chunks[-1].usage.prompt_tokens == 1200
    assert (
        scrape(telemetry.prometheus_url).value(
            "gen_ai_client_token_usage_count", {"gen_ai_token_type": "input"}
        )
        == 1
    )


def test_stream_closed_early_is_recorded_once_as_success(telemetry):
    provider = Provider().reply(sse(chat_chunks(with_usage=True), named=False), stream=True)
    client = nexus_otel.instrument_openai(provider.openai())
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    stream.close()
    s = scrape(telemetry.prometheus_url)
    assert s.value("gen_ai_client_operation_duration_seconds_count", {"nexus_outcome": "success"}) == 1
    assert s.value("gen_ai_client_operation_duration_seconds_count") == 1
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


def test_stream_failing_midway_propagates_and_records_the_error(telemetry):
    provider = Provider().reply(sse(anthropic_events(), named=True), stream=True, fail_after=3)
    client = nexus_otel.instrument_anthropic(provider.anthropic())
    stream = client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES, stream=True)
    seen = []

    def consume():
        for event in stream:
            seen.append(event.type)

    # The SDK lets the transport's own error through; it must reach the caller unchanged.
    with pytest.raises(Exception, match="peer closed connection") as err:
        consume()
    assert seen[:1] == ["message_start"]
    s = scrape(telemetry.prometheus_url)
    assert s.value("gen_ai_client_operation_duration_seconds_count", {"nexus_outcome": "error"}) == 1
    assert (
        s.value(
            "gen_ai_client_operation_duration_seconds_count", {"error_type": type(err.value).__qualname__}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("status", "exc_type"), [(429, openai.RateLimitError), (500, openai.InternalServerError)]
)
def test_http_errors_propagate_unchanged_and_set_error_type(telemetry, status, exc_type):
    provider = Provider().reply({"error": {"message": "nope", "type": "x"}}, status=status)
    client = nexus_otel.instrument_openai(provider.openai())
    with pytest.raises(exc_type) as err:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert err.value.status_code == status
    s = scrape(telemetry.prometheus_url)
    assert s.value("gen_ai_client_operation_duration_seconds_count", {"error_type": exc_type.__name__}) == 1
    assert "gen_ai_client_token_usage_count" not in s.names()


async def test_async_openai_chat_and_stream(telemetry):
    provider = (
        Provider().reply(chat_completion()).reply(sse(chat_chunks(with_usage=True), named=False), stream=True)
    )
    client = nexus_otel.instrument_openai(provider.async_openai())
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [c async for c in stream]
    assert len(chunks) == 4
    s = scrape(telemetry.prometheus_url)
    assert _openai_numbers(s)["calls"] == 2
    assert _openai_numbers(s)["input"] == 2400
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


def test_responses_api_usage_and_response_model(telemetry):
    provider = Provider().reply(RESPONSES_BODY)
    client = nexus_otel.instrument_openai(provider.openai())
    client.responses.create(model="o4-mini", input="What is 6x7?")
    s = scrape(telemetry.prometheus_url)
    labels = {"gen_ai_response_model": "o4-mini-2025-04-16"}
    assert _openai_numbers(s, **labels) == {
        "calls": 1,
        "input": 2000,
        "output": 900,
        "cache_read": 1500,
        "reasoning": 700,
        # o4-mini: $1.10 input, $0.275 cached, $4.40 output.
        "cost": pytest.approx((500 * 1.10 + 1500 * 0.275 + 200 * 4.40 + 700 * 4.40) / 1e6, abs=1e-12),
    }


# claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 / $2 cache write (5m / 1h), $5 output.
HAIKU_COST = (50 * 1 + 10_000 * 0.10 + 1_500 * 1.25 + 500 * 2 + 400 * 5) / 1e6


def test_anthropic_message_normalises_cache_tokens_and_prices_them_once(telemetry):
    provider = Provider().reply(anthropic_message())
    client = nexus_otel.instrument_anthropic(provider.anthropic())
    client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES)
    s = scrape(telemetry.prometheus_url)
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 12_050
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "output"}) == 400
    assert s.value("nexus_tokens_detailed_total", {"nexus_token_type": "cache_read"}) == 10_000
    assert s.value("nexus_tokens_detailed_total", {"nexus_token_type": "cache_write_5m"}) == 1_500
    assert s.value("nexus_tokens_detailed_total", {"nexus_token_type": "cache_write_1h"}) == 500
    assert s.value("nexus_cost_usd_total") == pytest.approx(HAIKU_COST, abs=1e-12)
    assert s.value("nexus_cost_usd_total", {"nexus_cost_type": "cache_write"}) == pytest.approx(
        0.002875, abs=1e-12
    )


async def test_anthropic_stream_counts_cumulative_output_once(telemetry):
    provider = Provider().reply(sse(anthropic_events(), named=True), stream=True)
    client = nexus_otel.instrument_anthropic(provider.async_anthropic())
    stream = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES, stream=True
    )
    types = [event.type async for event in stream]
    assert types[-1] == "message_stop"
    s = scrape(telemetry.prometheus_url)
    assert (
        s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "output"}) == 400
    )  # not 1 + 150 + 400
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 12_050
    assert s.value("nexus_cost_usd_total") == pytest.approx(HAIKU_COST, abs=1e-12)
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1


def test_only_the_instrumented_instance_is_tracked_and_instrumenting_twice_is_harmless(telemetry):
    tracked = Provider().reply(chat_completion())
    other = Provider().reply(chat_completion())
    client = nexus_otel.instrument_openai(nexus_otel.instrument_openai(tracked.openai()))
    untouched = other.openai()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    untouched.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert scrape(telemetry.prometheus_url).value("gen_ai_client_operation_duration_seconds_count") == 1
    assert type(untouched.chat.completions).create is openai.resources.chat.completions.Completions.create


def test_anthropic_errors_propagate(telemetry):
    provider = Provider().reply(
        {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, status=529
    )
    client = nexus_otel.instrument_anthropic(provider.anthropic())
    with pytest.raises(anthropic.APIStatusError) as err:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=MESSAGES)
    s = scrape(telemetry.prometheus_url)
    assert (
        s.value(
            "gen_ai_client_operation_duration_seconds_count", {"error_type": type(err.value).__qualname__}
        )
        == 1
    )


def test_responses_api_stream_takes_usage_from_the_completed_event(telemetry):
    created = {**RESPONSES_BODY, "status": "in_progress", "usage": None, "output": []}
    events = [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "42",
            "logprobs": [],
        },
        {"type": "response.completed", "sequence_number": 2, "response": RESPONSES_BODY},
    ]
    provider = Provider().reply(sse(events, named=True), stream=True)
    client = nexus_otel.instrument_openai(provider.openai())
    seen = [event.type for event in client.responses.create(model="o4-mini", input="6x7?", stream=True)]
    assert seen == ["response.created", "response.output_text.delta", "response.completed"]
    s = scrape(telemetry.prometheus_url)
    assert _openai_numbers(s, gen_ai_response_model="o4-mini-2025-04-16")["reasoning"] == 700
    assert s.value("gen_ai_client_token_usage_sum", {"gen_ai_token_type": "input"}) == 2000
    assert s.value("gen_ai_client_operation_time_to_first_chunk_seconds_count") == 1
