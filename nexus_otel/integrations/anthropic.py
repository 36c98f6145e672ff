"""``instrument_anthropic(client)``: track every Messages call of one client."""

from __future__ import annotations

from typing import TypeVar

from ._wrap import wrap_create

__all__ = ["instrument_anthropic"]

C = TypeVar("C")


def instrument_anthropic(
    client: C, *, feature: str | None = None, team: str | None = None, project: str | None = None
) -> C:
    """Wrap ``client.messages.create`` of this ``Anthropic``/``AsyncAnthropic`` instance.

    Streamed calls (``stream=True``) come back wrapped; usage is taken from
    ``message_start`` and the cumulative ``message_delta``. Returns the client.
    """
    host = getattr(getattr(client, "base_url", None), "host", None) or None
    wrap_create(
        client.messages,  # type: ignore[attr-defined]
        provider="anthropic",
        operation="chat",
        server_address=host,
        attribution={"feature": feature, "team": team, "project": project},
    )
    return client
