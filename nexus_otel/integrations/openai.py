"""``instrument_openai(client)``: track every Chat Completions and Responses call of one client."""

from __future__ import annotations

from typing import Any, TypeVar

from ._wrap import wrap_create

__all__ = ["instrument_openai"]

C = TypeVar("C")


def _ask_for_stream_usage(kwargs: dict[str, Any]) -> bool:
    """Streamed chat calls report usage only when asked; ask, and hide the extra chunk."""
    if not kwargs.get("stream"):
        return False
    options = kwargs.get("stream_options")
    if isinstance(options, dict) and "include_usage" in options:
        return False  # the caller decided; they see exactly what they asked for
    kwargs["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return True


def instrument_openai(
    client: C, *, feature: str | None = None, team: str | None = None, project: str | None = None
) -> C:
    """Wrap ``client.chat.completions.create`` and ``client.responses.create`` of this instance.

    Works for ``OpenAI`` and ``AsyncOpenAI`` (and Azure clients). Other client
    instances are untouched; calling it twice changes nothing. Returns the client.
    """
    host = getattr(getattr(client, "base_url", None), "host", None) or None
    attribution = {"feature": feature, "team": team, "project": project}
    wrap_create(
        client.chat.completions,  # type: ignore[attr-defined]
        provider="openai",
        operation="chat",
        server_address=host,
        attribution=attribution,
        prepare=_ask_for_stream_usage,
    )
    responses = getattr(client, "responses", None)
    if responses is not None:
        wrap_create(
            responses, provider="openai", operation="chat", server_address=host, attribution=attribution
        )
    return client
