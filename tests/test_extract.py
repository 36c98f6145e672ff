"""Usage extraction normalises every provider's shape to one model."""

from __future__ import annotations

import gc

import pytest

from nexus_otel.extract import UsageAccumulator, response_model_from, usage_from_response
from nexus_otel.streams import SyncStreamWrapper
from nexus_otel.usage import Usage
from tests.providers import ANTHROPIC_USAGE, CHAT_USAGE, RESPONSES_BODY, anthropic_events, chat_chunks


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            {"usage": CHAT_USAGE},
            Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=120),
        ),
        (
            RESPONSES_BODY,
            Usage(input_tokens=2000, output_tokens=900, cache_read_tokens=1500, reasoning_tokens=700),
        ),
        (
            {"usage": ANTHROPIC_USAGE},
            Usage(
                input_tokens=12_050,
                output_tokens=400,
                cache_read_tokens=10_000,
                cache_write_5m_tokens=1_500,
                cache_write_1h_tokens=500,
            ),
        ),
        (
            {
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 3,
                    "cache_creation_input_tokens": 4,
                    "cache_read_input_tokens": 0,
                }
            },
            Usage(input_tokens=14, output_tokens=3, cache_write_5m_tokens=4),
        ),
        (
            {
                "usage_metadata": {
                    "prompt_token_count": 900,
                    "candidates_token_count": 100,
                    "thoughts_token_count": 50,
                    "cached_content_token_count": 300,
                }
            },
            Usage(input_tokens=900, output_tokens=150, cache_read_tokens=300, reasoning_tokens=50),
        ),
        (
            {
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 1,
                    "prompt_tokens_details": {"cached_tokens": 99},
                }
            },
            Usage(input_tokens=10, output_tokens=1, cache_read_tokens=10),
        ),  # clamped, not rejected
        ({"choices": []}, None),
        (None, None),
    ],
)
def test_usage_from_response_shapes(response, expected):
    assert usage_from_response(response) == expected


def test_response_model_from_objects_and_events():
    assert response_model_from({"model": "gpt-4o-2024-08-06"}) == "gpt-4o-2024-08-06"
    assert response_model_from({"type": "response.completed", "response": {"model": "o3"}}) == "o3"
    assert response_model_from({"type": "message_start", "message": {"model": "claude-x"}}) == "claude-x"
    assert response_model_from({"usage": {}}) is None


def test_accumulator_openai_final_chunk_and_anthropic_cumulative_delta():
    acc = UsageAccumulator()
    for chunk in chat_chunks(with_usage=True):
        acc.feed(chunk)
    assert acc.usage == Usage(
        input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=120
    )
    assert acc.response_model == "gpt-4o-2024-08-06"
    acc = UsageAccumulator()
    for event in anthropic_events():
        acc.feed(event)
    assert acc.usage.output_tokens == 400
    assert acc.usage.input_tokens == 12_050
    assert acc.response_model == "claude-haiku-4-5-20251001"


def test_accumulator_responses_completed_event():
    acc = UsageAccumulator()
    acc.feed({"type": "response.created", "response": {**RESPONSES_BODY, "usage": None}})
    acc.feed({"type": "response.output_text.delta", "delta": "4"})
    acc.feed({"type": "response.completed", "response": RESPONSES_BODY})
    assert acc.usage.reasoning_tokens == 700


class Hooks:
    def __init__(self):
        self.chunks = []
        self.ends = []

    def on_chunk(self, chunk):
        self.chunks.append(chunk)
        return chunk != "hidden"

    def on_end(self, error):
        self.ends.append(error)


def test_stream_wrapper_finishes_once_on_end_close_and_garbage_collection():
    hooks = Hooks()
    wrapped = SyncStreamWrapper(iter(["a", "hidden", "b"]), hooks)
    assert list(wrapped) == ["a", "b"]
    wrapped.close()
    assert hooks.ends == [None]

    hooks = Hooks()
    abandoned = SyncStreamWrapper(iter(["a", "b"]), hooks)
    next(abandoned)
    del abandoned
    gc.collect()
    assert hooks.ends == [None]

    def failing():
        yield "a"
        raise ConnectionResetError("gone")

    hooks = Hooks()
    wrapped = SyncStreamWrapper(failing(), hooks)
    with pytest.raises(ConnectionResetError):
        list(wrapped)
    assert len(hooks.ends) == 1
    assert isinstance(hooks.ends[0], ConnectionResetError)


def test_stream_wrapper_passes_attributes_through():
    class ProviderStream:
        response = "http-response"

        def __iter__(self):
            return iter(())

        def __next__(self):
            raise StopIteration

    wrapped = SyncStreamWrapper(ProviderStream(), Hooks())
    assert wrapped.response == "http-response"


def test_official_chat_completion_object_reads_like_its_dict_and_clamps_details():
    """The pydantic fast path must give what the dict path gives, including a field the model lacks."""
    import copy

    from openai.types.chat import ChatCompletion

    body = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [],
        "usage": copy.deepcopy(CHAT_USAGE),
    }
    for details in ({}, {"cache_write_tokens": 100}, {"cached_tokens": 10**9}):
        body["usage"]["prompt_tokens_details"] = {**CHAT_USAGE["prompt_tokens_details"], **details}
        as_object = usage_from_response(ChatCompletion.model_validate(body))
        assert as_object == usage_from_response(body), details
    assert as_object.cache_read_tokens == as_object.input_tokens  # clamped, not dropped


def test_usage_object_that_is_not_pydantic_is_read_through_getattr():
    class Details:
        cached_tokens = 4

        @property
        def cache_write_tokens(self) -> int:
            return 3

    class U:
        prompt_tokens = 10
        completion_tokens = 5
        prompt_tokens_details = Details()
        completion_tokens_details = None

    class R:
        usage = U()

    assert usage_from_response(R()) == Usage(
        input_tokens=10, output_tokens=5, cache_read_tokens=4, cache_write_5m_tokens=3
    )
