"""Provider-shaped fake model APIs behind the official OpenAI and Anthropic clients.

The demo (and anyone trying nexus-otel without an API key) talks to these
through ``httpx.MockTransport``: the official clients parse real-looking JSON
and SSE bodies, so the instrumentation sees exactly what it would in
production. Nothing leaves the process.
"""

from __future__ import annotations

import importlib
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import clock

__all__ = [
    "DirectProviders",
    "InternalServerError",
    "ProviderBehaviour",
    "RateLimitError",
    "anthropic_client",
    "anthropic_reply",
    "mock_http_client",
    "openai_client",
    "openai_reply",
]

REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")


@dataclass
class ProviderBehaviour:
    """How the fake provider answers; the traffic simulator changes it during incidents."""

    rng: random.Random = field(default_factory=random.Random)
    error_rate: float = 0.01  # share of calls answered with HTTP 500
    rate_limit_rate: float = 0.01  # share answered with HTTP 429
    latency_factor: float = 1.0
    output_factor: float = 1.0  # multiplies output tokens (a cost spike is a verbose model)
    cached_share: float = 0.3  # share of the prompt served from the provider's cache
    #: take the simulated latency through ``nexus_otel.clock.sleep``: really wait in live
    #: mode, advance the clock under a SimulatedClock (backfill); False answers at once
    sleep: bool = False
    #: set when the live demo is stopping: calls in flight answer at once instead of sleeping
    #: out a spike's long latency, so Ctrl-C does not wait tens of seconds (they are still recorded)
    interrupt: threading.Event | None = None

    def simulated_latency(self, output_tokens: int) -> float:
        return self.latency_factor * (0.15 + output_tokens * self.rng.uniform(0.004, 0.012))

    def failure(self) -> tuple[int, str, str] | None:
        """(HTTP status, error type, message) when this call fails, else None."""
        roll = self.rng.random()
        if roll < self.rate_limit_rate:
            return 429, "rate_limit_error", "Rate limit reached"
        if roll < self.rate_limit_rate + self.error_rate:
            return 500, "server_error", "The server had an error"
        return None

    def wait(self, seconds: float) -> None:
        if not self.sleep:
            return
        if self.interrupt is not None:
            self.interrupt.wait(seconds)
        else:
            clock.sleep(seconds)


def _prompt_tokens(messages: Any) -> int:
    text = json.dumps(messages)
    return max(8, len(text) // 4)


def mock_http_client(
    sdk: Any, make_handler: Callable[[Any], Callable[[Any], Any]], *, asynchronous: bool = False
) -> Any:
    """The SDK's own HTTP client class on a MockTransport of the httpx flavour it is built on.

    openai 1.x-3.x use ``httpx``; anthropic 2.x moved to ``httpx2``. ``make_handler``
    receives that module and returns the request handler.
    """
    client_cls = sdk.DefaultAsyncHttpxClient if asynchronous else sdk.DefaultHttpxClient
    roots = (c.__module__.split(".")[0] for c in client_cls.__mro__)
    hx = importlib.import_module(next(r for r in roots if r in ("httpx", "httpx2")))
    return client_cls(transport=hx.MockTransport(make_handler(hx)))


def openai_client(behaviour: ProviderBehaviour) -> Any:
    """An ``openai.OpenAI`` client answering Chat Completions and Responses calls locally."""
    import openai

    return openai.OpenAI(
        api_key="demo-key",
        base_url="http://openai.demo.invalid/v1",
        max_retries=0,
        http_client=mock_http_client(openai, lambda hx: _openai_handler(behaviour, hx)),
    )


def _openai_handler(b: ProviderBehaviour, hx: Any) -> Callable[[Any], Any]:
    def handle(request: Any) -> Any:
        failure = b.failure()
        if failure is not None:
            status, kind, message = failure
            return hx.Response(status, json={"error": {"message": message, "type": kind}})
        body = json.loads(request.content or b"{}")
        reply = openai_reply(b, body, responses=request.url.path.endswith("/responses"))
        return hx.Response(200, json=reply) if isinstance(reply, dict) else _sse(hx, reply)

    return handle


def openai_reply(
    b: ProviderBehaviour, body: dict[str, Any], *, responses: bool = False
) -> dict[str, Any] | Iterator[dict[str, Any]]:
    """The JSON body (or the stream's chunks) OpenAI would answer to a request ``body``."""
    model = body.get("model", "gpt-4o-mini")
    prompt = _prompt_tokens(body.get("messages") or body.get("input"))
    cached = int(prompt * b.cached_share) // 64 * 64  # OpenAI caches in 64-token blocks
    output = max(1, int(b.rng.lognormvariate(5.0, 0.6) * b.output_factor))
    reasoning = int(output * b.rng.uniform(0.3, 0.7)) if model.startswith(REASONING_MODELS) else 0
    b.wait(b.simulated_latency(output))
    if responses:
        return _responses_body(model, prompt, cached, output, reasoning)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }
    response_model = f"{model}-2024-08-06" if model == "gpt-4o" else model
    if body.get("stream"):
        include_usage = (body.get("stream_options") or {}).get("include_usage", False)
        return _openai_chunks(response_model, output, usage if include_usage else None)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(clock.now()),
        "model": response_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok " * min(output, 50)},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _openai_chunks(model: str, output: int, usage: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    base = {"id": cid, "object": "chat.completion.chunk", "created": int(clock.now()), "model": model}
    yield {
        **base,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
    }
    for _ in range(min(output, 5)):
        yield {**base, "choices": [{"index": 0, "delta": {"content": "ok "}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if usage is not None:
        yield {**base, "choices": [], "usage": usage}


def _responses_body(model: str, prompt: int, cached: int, output: int, reasoning: int) -> dict[str, Any]:
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(clock.now()),
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + output,
        },
    }


def anthropic_client(behaviour: ProviderBehaviour) -> Any:
    """An ``anthropic.Anthropic`` client answering Messages calls locally."""
    import anthropic

    return anthropic.Anthropic(
        api_key="demo-key",
        base_url="http://anthropic.demo.invalid",
        max_retries=0,
        http_client=mock_http_client(anthropic, lambda hx: _anthropic_handler(behaviour, hx)),
    )


def _anthropic_handler(b: ProviderBehaviour, hx: Any) -> Callable[[Any], Any]:
    def handle(request: Any) -> Any:
        failure = b.failure()
        if failure is not None:
            status, kind, message = failure
            return hx.Response(status, json={"type": "error", "error": {"type": kind, "message": message}})
        reply = anthropic_reply(b, json.loads(request.content or b"{}"))
        return hx.Response(200, json=reply) if isinstance(reply, dict) else _sse(hx, reply, named=True)

    return handle


def anthropic_reply(b: ProviderBehaviour, body: dict[str, Any]) -> dict[str, Any] | Iterator[dict[str, Any]]:
    """The JSON body (or the stream's events) Anthropic's Messages API would answer to ``body``."""
    model = body.get("model", "claude-sonnet-4-5")
    prompt = _prompt_tokens(body.get("messages"))
    cache_read = int(prompt * b.cached_share)
    cache_write = int(prompt * 0.05) if b.rng.random() < 0.2 else 0
    uncached = prompt - cache_read - cache_write
    output = max(1, int(b.rng.lognormvariate(5.2, 0.6) * b.output_factor))
    b.wait(b.simulated_latency(output))
    usage = {
        "input_tokens": uncached,
        "output_tokens": output,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }
    mid = f"msg_{uuid.uuid4().hex[:24]}"
    if body.get("stream"):
        return _anthropic_events(mid, model, usage)
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok " * min(output, 50)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def _anthropic_events(mid: str, model: str, usage: dict[str, int]) -> Iterator[dict[str, Any]]:
    start_usage = {**usage, "output_tokens": 1}
    yield {
        "type": "message_start",
        "message": {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        },
    }
    yield {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    for _ in range(3):
        yield {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok "}}
    yield {"type": "content_block_stop", "index": 0}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    yield {"type": "message_stop"}


def _sse(hx: Any, events: Iterator[dict[str, Any]], *, named: bool = False) -> Any:
    lines = []
    for event in events:
        if named:
            lines.append(f"event: {event['type']}\n")
        lines.append(f"data: {json.dumps(event)}\n\n")
    if not named:
        lines.append("data: [DONE]\n\n")
    return hx.Response(200, headers={"content-type": "text/event-stream"}, content="".join(lines).encode())


class RateLimitError(Exception):
    """HTTP 429 from a provider called directly (named like the official SDKs' error)."""


class InternalServerError(Exception):
    """HTTP 5xx from a provider called directly (named like the official SDKs' error)."""


class DirectProviders:
    """The same fake providers as plain functions returning provider-shaped dicts.

    No HTTP client in between, so a call costs microseconds instead of the
    official clients' request building and response parsing: this is how the
    demo backfills weeks of history through ``track_model_call`` quickly.
    Failures raise :class:`RateLimitError` / :class:`InternalServerError`.
    """

    def __init__(self, behaviour: ProviderBehaviour) -> None:
        self.behaviour = behaviour

    def _check(self) -> None:
        failure = self.behaviour.failure()
        if failure is not None:
            status, _, message = failure
            raise (RateLimitError if status == 429 else InternalServerError)(message)

    def openai(self, *, model: str, messages: list[Any], stream: bool, responses: bool = False) -> Any:
        self._check()
        body: dict[str, Any] = {"model": model, "messages": messages}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return openai_reply(self.behaviour, body, responses=responses)

    def anthropic(self, *, model: str, messages: list[Any], stream: bool) -> Any:
        self._check()
        return anthropic_reply(self.behaviour, {"model": model, "messages": messages, "stream": stream})
