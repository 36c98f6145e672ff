"""Official OpenAI/Anthropic clients on a mock transport serving fixed, realistic bodies.

Only the remote provider is faked; everything on our side of the HTTP call is real.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import openai

from nexus_otel.demo.providers import mock_http_client

CHAT_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 120, "audio_tokens": 0},
}


def chat_completion(model: str = "gpt-4o-2024-08-06", usage: dict | None = None) -> dict:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}
        ],
        "usage": usage or CHAT_USAGE,
    }


def chat_chunks(model: str = "gpt-4o-2024-08-06", *, with_usage: bool) -> list[dict]:
    base = {
        "id": "chatcmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1_767_225_600,
        "model": model,
    }
    chunks = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        },
        {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "lo!"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    if with_usage:
        chunks.append({**base, "choices": [], "usage": CHAT_USAGE})
    return chunks


RESPONSES_BODY = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1_767_225_600,
    "status": "completed",
    "model": "o4-mini-2025-04-16",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "42", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 2000,
        "input_tokens_details": {"cached_tokens": 1500},
        "output_tokens": 900,
        "output_tokens_details": {"reasoning_tokens": 700},
        "total_tokens": 2900,
    },
}

ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "output_tokens": 400,
    "cache_read_input_tokens": 10_000,
    "cache_creation_input_tokens": 2_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1_500, "ephemeral_1h_input_tokens": 500},
}


def anthropic_message(model: str = "claude-haiku-4-5-20251001") -> dict:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }


def anthropic_events(model: str = "claude-haiku-4-5-20251001") -> list[dict]:
    start_usage = {**ANTHROPIC_USAGE, "output_tokens": 1}
    return [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": None, "stop_sequence": None},
            "usage": {"output_tokens": 150},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 400},
        },
        {"type": "message_stop"},
    ]


def sse(events: list[dict], *, named: bool, done: bool = True, cut_after: int | None = None) -> bytes:
    out = []
    for i, e in enumerate(events):
        if cut_after is not None and i >= cut_after:
            # A broken connection mid-stream: a truncated, unparseable event.
            out.append('data: {"type": "content_block_del')
            return "".join(out).encode()
        if named:
            out.append(f"event: {e['type']}\n")
        out.append(f"data: {json.dumps(e)}\n\n")
    if done and not named:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


class Provider:
    """A scripted remote provider: each request pops the next response."""

    def __init__(self) -> None:
        self.responses: list[tuple[int, Any, bool, int | None]] = []  # (status, body, is_sse, fail_after)
        self.requests: list[dict] = []
        self.asynchronous = False

    def reply(
        self, body: Any, *, status: int = 200, stream: bool = False, fail_after: int | None = None
    ) -> Provider:
        """Queue a response; ``fail_after=N`` drops the connection after N SSE events."""
        self.responses.append((status, body, stream, fail_after))
        return self

    def handler(self, hx: Any) -> Callable[[Any], Any]:
        def handle(request: Any) -> Any:
            self.requests.append(json.loads(request.content or b"{}"))
            status, body, is_sse, fail_after = self.responses.pop(0)
            headers = {"content-type": "text/event-stream"}
            if is_sse and fail_after is not None:
                parts = [p + b"\n\n" for p in body.split(b"\n\n") if p][:fail_after]
                return hx.Response(status, headers=headers, stream=self._broken(hx, parts))
            if is_sse:
                return hx.Response(status, headers=headers, content=body)
            return hx.Response(status, json=body)

        return handle

    def _broken(self, hx: Any, parts: list[bytes]) -> Any:
        error = hx.RemoteProtocolError("peer closed connection without sending complete message body")
        if self.asynchronous:

            class AsyncBroken(hx.AsyncByteStream):
                async def __aiter__(self):
                    for part in parts:
                        yield part
                    raise error

            return AsyncBroken()

        class Broken(hx.SyncByteStream):
            def __iter__(self):
                yield from parts
                raise error

        return Broken()

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(
            api_key="k",
            base_url="http://api.openai.test/v1",
            max_retries=0,
            http_client=mock_http_client(openai, self.handler),
        )

    def async_openai(self) -> openai.AsyncOpenAI:
        self.asynchronous = True
        return openai.AsyncOpenAI(
            api_key="k",
            base_url="http://api.openai.test/v1",
            max_retries=0,
            http_client=mock_http_client(openai, self.handler, asynchronous=True),
        )

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            api_key="k",
            base_url="http://api.anthropic.test",
            max_retries=0,
            http_client=mock_http_client(anthropic, self.handler),
        )

    def async_anthropic(self) -> anthropic.AsyncAnthropic:
        self.asynchronous = True
        return anthropic.AsyncAnthropic(
            api_key="k",
            base_url="http://api.anthropic.test",
            max_retries=0,
            http_client=mock_http_client(anthropic, self.handler, asynchronous=True),
        )
