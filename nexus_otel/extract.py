"""Read token usage and the response model out of provider responses and stream chunks.

Every shape is normalised to :class:`~nexus_otel.usage.Usage` (input includes
cached input, output includes reasoning):

* OpenAI Chat Completions: ``prompt_tokens`` already includes
  ``prompt_tokens_details.cached_tokens``; ``completion_tokens`` includes
  ``completion_tokens_details.reasoning_tokens``.
* OpenAI Responses: ``input_tokens`` includes ``input_tokens_details.cached_tokens``;
  ``output_tokens`` includes ``output_tokens_details.reasoning_tokens``.
* Anthropic Messages: ``input_tokens`` *excludes* ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens`` (split into 5-minute and 1-hour writes in
  ``cache_creation``); ``output_tokens`` includes thinking tokens.
* Google Gemini ``usage_metadata``: ``candidates_token_count`` excludes
  ``thoughts_token_count``.

Works on the official clients' pydantic objects and on plain dicts alike.
"""

from __future__ import annotations

from typing import Any

from .usage import Usage

__all__ = ["UsageAccumulator", "response_model_from", "usage_from_response", "usage_from_usage_object"]


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_response(obj: Any) -> Usage | None:
    """Usage of a whole response (or a final stream chunk/event), or None when it carries none."""
    if obj is None:
        return None
    usage = _get(obj, "usage")
    prompt_tokens = getattr(usage, "prompt_tokens", None)
    if type(prompt_tokens) is int and type(usage) is not dict:
        # The common case on the hot path: an OpenAI ChatCompletion object, read with
        # one attribute access per number.
        return _openai_chat_object(usage, prompt_tokens)
    if usage is None:
        usage = _get(obj, "usage_metadata")
    if usage is None:
        response = _get(obj, "response")  # Responses API stream events wrap the response
        if response is not None and response is not obj:
            return usage_from_response(response)
        message = _get(obj, "message")  # Anthropic message_start wraps the message
        if message is not None and message is not obj and not isinstance(message, str):
            return usage_from_response(message)
        return None
    return usage_from_usage_object(usage)


def usage_from_usage_object(usage: Any) -> Usage | None:
    """Normalise one provider ``usage`` object or dict."""
    if usage is None:
        return None
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        return _openai_chat(usage)
    if _get(usage, "prompt_token_count") is not None:
        return _gemini(usage)
    anthropic_keys = ("cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation")
    if (
        any(_get(usage, k) is not None for k in anthropic_keys)
        and _get(usage, "input_tokens_details") is None
    ):
        return _anthropic(usage)
    if _get(usage, "input_tokens") is not None or _get(usage, "output_tokens") is not None:
        return _openai_responses(usage)
    return None


def _normalised(
    *, input_tokens: int, output_tokens: int, cache_read: int, cache_write_5m: int, reasoning: int
) -> Usage:
    # Providers occasionally report details larger than the total; clamp rather than drop the call.
    cache_read = min(cache_read, input_tokens)
    cache_write_5m = min(cache_write_5m, input_tokens - cache_read)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write_5m,
        reasoning_tokens=min(reasoning, output_tokens),
    )


_NOT_PYDANTIC = object()


def _optional(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)`` for a field a response may lack.

    On a pydantic model (the official clients' responses) a missing attribute goes
    through the model's ``__getattr__``, which builds and raises a formatted
    AttributeError: several times the cost of reading every other number. Its
    fields live in ``__dict__`` and unknown ones in ``__pydantic_extra__``.
    """
    if obj is None:
        return None
    fields = getattr(obj, "__dict__", None)
    if fields is not None and name in fields:
        return fields[name]
    extra = getattr(obj, "__pydantic_extra__", _NOT_PYDANTIC)
    if extra is _NOT_PYDANTIC:
        return getattr(obj, name, None)
    return extra.get(name) if isinstance(extra, dict) else None


def _openai_chat_object(u: Any, prompt_tokens: int) -> Usage:
    completion = getattr(u, "completion_tokens", None)
    prompt_details = getattr(u, "prompt_tokens_details", None)
    completion_details = getattr(u, "completion_tokens_details", None)
    cached = getattr(prompt_details, "cached_tokens", None) if prompt_details is not None else None
    written = _optional(prompt_details, "cache_write_tokens")
    reasoning = (
        getattr(completion_details, "reasoning_tokens", None) if completion_details is not None else None
    )
    # Clamped like _normalised, with comparisons: min() parses its arguments on every call.
    inp = prompt_tokens if prompt_tokens > 0 else 0
    out = completion if type(completion) is int and completion > 0 else _int(completion)
    read = cached if type(cached) is int and cached > 0 else _int(cached)
    if read > inp:  # noqa: PLR1730
        read = inp
    write = _int(written) if written is not None else 0
    if write > inp - read:  # noqa: PLR1730
        write = inp - read
    reason = reasoning if type(reasoning) is int and reasoning > 0 else _int(reasoning)
    if reason > out:  # noqa: PLR1730
        reason = out
    return Usage._checked_by_caller(inp, out, read, write, reason)


def _openai_chat(u: Any) -> Usage:
    if isinstance(u, dict):
        prompt_details = u.get("prompt_tokens_details")
        completion_details = u.get("completion_tokens_details")
    else:
        prompt_details = getattr(u, "prompt_tokens_details", None)
        completion_details = getattr(u, "completion_tokens_details", None)
    return _normalised(
        input_tokens=_int(_get(u, "prompt_tokens")),
        output_tokens=_int(_get(u, "completion_tokens")),
        cache_read=_int(_get(prompt_details, "cached_tokens")),
        cache_write_5m=_int(_get(prompt_details, "cache_write_tokens")),
        reasoning=_int(_get(completion_details, "reasoning_tokens")),
    )


def _openai_responses(u: Any) -> Usage:
    input_details = _get(u, "input_tokens_details")
    output_details = _get(u, "output_tokens_details")
    return _normalised(
        input_tokens=_int(_get(u, "input_tokens")),
        output_tokens=_int(_get(u, "output_tokens")),
        cache_read=_int(_get(input_details, "cached_tokens")),
        cache_write_5m=_int(_get(input_details, "cache_write_tokens")),
        reasoning=_int(_get(output_details, "reasoning_tokens")),
    )


def _anthropic(u: Any) -> Usage:
    creation = _get(u, "cache_creation")
    write_5m = _int(_get(creation, "ephemeral_5m_input_tokens"))
    write_1h = _int(_get(creation, "ephemeral_1h_input_tokens"))
    if creation is None or (write_5m + write_1h) == 0:
        # Without the split every write is billed at the default (5-minute) rate.
        write_5m, write_1h = _int(_get(u, "cache_creation_input_tokens")), 0
    output = _int(_get(u, "output_tokens"))
    return Usage.from_parts(
        uncached_input_tokens=_int(_get(u, "input_tokens")),
        cache_read_tokens=_int(_get(u, "cache_read_input_tokens")),
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=output,
        reasoning_tokens=min(_int(_get(_get(u, "output_tokens_details"), "thinking_tokens")), output),
    )


def _gemini(u: Any) -> Usage:
    thoughts = _int(_get(u, "thoughts_token_count"))
    return _normalised(
        input_tokens=_int(_get(u, "prompt_token_count")),
        output_tokens=_int(_get(u, "candidates_token_count")) + thoughts,
        cache_read=_int(_get(u, "cached_content_token_count")),
        cache_write_5m=0,
        reasoning=thoughts,
    )


def response_model_from(obj: Any) -> str | None:
    """The model that actually served the response, when the response names it."""
    model = getattr(obj, "model", None)
    if type(model) is str and model:
        return model
    for holder in (obj, _get(obj, "response"), _get(obj, "message")):
        if holder is None or isinstance(holder, str):
            continue
        model = _get(holder, "model") or _get(holder, "model_version")
        if isinstance(model, str) and model:
            return model
    return None


class UsageAccumulator:
    """Follows a stream chunk by chunk and ends with the call's usage, counted once.

    * OpenAI Chat: the final chunk carries ``usage`` (with ``include_usage``).
    * OpenAI Responses: the ``response.completed`` event carries the response.
    * Anthropic: ``message_start`` carries input (and cache) tokens;
      ``message_delta`` carries *cumulative* output tokens, so the last one wins.
    * Anything else: the last chunk that carries a usage object.
    """

    __slots__ = ("_anthropic_start", "_usage", "response_model")

    def __init__(self) -> None:
        self._usage: Usage | None = None
        self._anthropic_start: Any = None
        self.response_model: str | None = None

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def feed(self, chunk: Any) -> None:
        kind = _get(chunk, "type")
        if kind == "message_start":
            message = _get(chunk, "message")
            self._anthropic_start = _get(message, "usage")
            self.response_model = _get(message, "model") or self.response_model
            self._usage = (
                _anthropic(self._anthropic_start) if self._anthropic_start is not None else self._usage
            )
            return
        if kind == "message_delta":
            delta_usage = _get(chunk, "usage")
            if delta_usage is not None:
                self._usage = _anthropic(_merge(self._anthropic_start, delta_usage))
            return
        if kind is not None and isinstance(kind, str) and kind.startswith("response."):
            response = _get(chunk, "response")
            if response is not None:
                self.response_model = _get(response, "model") or self.response_model
                usage = usage_from_response(response)
                if usage is not None:
                    self._usage = usage
            return
        model = _get(chunk, "model")
        if isinstance(model, str) and model:
            self.response_model = model
        usage = _get(chunk, "usage")
        if usage is not None:
            normalised = usage_from_usage_object(usage)
            if normalised is not None:
                self._usage = normalised


def _merge(start: Any, delta: Any) -> dict[str, Any]:
    """message_start usage overlaid with message_delta's non-null (cumulative) fields."""
    fields = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "output_tokens_details",
    )
    merged = {f: _get(start, f) for f in fields}
    for f in fields:
        value = _get(delta, f)
        if value is not None:
            merged[f] = value
    return merged
