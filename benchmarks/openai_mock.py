"""The model call every benchmark makes: one realistic OpenAI Chat Completion.

Shared by our benchmarks and the peers' (which run in their own virtual
environments with older ``openai`` releases), so it uses nothing beyond
``openai``, ``httpx`` and the standard library. The provider is the official
``openai`` client over an ``httpx.MockTransport``: the whole client stack
(request building, JSON parsing into pydantic models) runs, no socket is opened.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "CHAT_COMPLETION",
    "MODEL",
    "REQUEST",
    "USAGE",
    "make_chat_completion",
    "make_client",
]

MODEL = "o4-mini"
RESPONSE_MODEL = "o4-mini-2025-04-16"

#: Token counts as OpenAI reports them: cached tokens inside prompt_tokens,
#: reasoning tokens inside completion_tokens.
USAGE = {
    "prompt_tokens": 1523,
    "completion_tokens": 412,
    "total_tokens": 1935,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 256,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-BnX8benchmark0001",
    "object": "chat.completion",
    "created": 1750000000,
    "model": RESPONSE_MODEL,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "The printer is on fire because the fuser overheated. Unplug it, "
                "keep the lid closed and call facilities; do not open the tray.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
    "service_tier": "default",
    "system_fingerprint": None,
}

#: The arguments of every mocked client call.
REQUEST: dict[str, Any] = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a concise IT support assistant."},
        {"role": "user", "content": "Summarise this ticket: the printer on floor 3 is on fire."},
    ],
}

_BODY = json.dumps(CHAT_COMPLETION).encode()
_HEADERS = {
    "content-type": "application/json",
    "x-request-id": "req_benchmark",
    "openai-processing-ms": "412",
}


def make_chat_completion() -> Any:
    """The response as the client returns it (``openai.types.chat.ChatCompletion``)."""
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(CHAT_COMPLETION)


def make_client() -> Any:
    """An ``openai.OpenAI`` client whose transport answers every request with :data:`CHAT_COMPLETION`."""
    import httpx
    import openai

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_BODY, headers=_HEADERS)

    return openai.OpenAI(
        api_key="sk-benchmark",
        base_url="https://api.openai.com/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(respond)),
    )
