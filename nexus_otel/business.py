"""Feature use, feedback, revenue and sessions: the product side of an AI feature.

Each helper fills what it is not given from the current
:func:`nexus_otel.attribution` scope, updates a metric and emits one event.
None of them ever raises because of nexus-otel itself; invalid arguments
(a programming error in the caller) raise ``ValueError`` immediately.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator

from . import clock
from .attribution import attribution, current
from .recorder import get_recorder

__all__ = ["end_session", "session", "start_session", "track_feature", "track_feedback", "track_revenue"]


def track_feature(
    feature: str,
    *,
    count: int = 1,
    user_id: str | None = None,
    session_id: str | None = None,
    team: str | None = None,
    project: str | None = None,
) -> None:
    """Count ``count`` uses of a product feature."""
    if not feature:
        raise ValueError("feature must be a non-empty string")
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    ctx = current()
    get_recorder().record_feature_use(
        feature=feature,
        count=count,
        user_id=user_id or ctx.user_id,
        session_id=session_id or ctx.session_id,
        team=team or ctx.team,
        project=project or ctx.project,
    )


def track_feedback(
    request_id: str,
    score: float,
    *,
    scale: tuple[float, float] = (0.0, 1.0),
    user_id: str | None = None,
    comment: str | None = None,
    model: str | None = None,
    feature: str | None = None,
) -> None:
    """Record a user's feedback on the call ``request_id`` (see ``call.request_id``).

    ``score`` is on ``scale`` (e.g. ``(1, 5)`` for stars) and stored normalised
    to 0..1. Only the comment's length is kept, never its text.
    """
    low, high = scale
    if not high > low:
        raise ValueError(f"scale must be (low, high) with high > low, got {scale!r}")
    if (
        isinstance(score, bool)
        or not isinstance(score, (int, float))
        or math.isnan(score)
        or not low <= score <= high
    ):
        raise ValueError(f"score must be a number within {scale!r}, got {score!r}")
    ctx = current()
    get_recorder().record_feedback(
        request_id=request_id,
        score=(score - low) / (high - low),
        user_id=user_id or ctx.user_id,
        comment_length=len(comment) if comment is not None else None,
        model=model,
        feature=feature or ctx.feature,
        team=ctx.team,
        project=ctx.project,
    )


def track_revenue(
    user_id: str | None,
    amount_usd: float,
    plan: str | None = None,
    *,
    team: str | None = None,
    project: str | None = None,
) -> None:
    """Attribute revenue (a payment, a renewal; negative for a refund) to a user and plan."""
    if (
        isinstance(amount_usd, bool)
        or not isinstance(amount_usd, (int, float))
        or not math.isfinite(amount_usd)
    ):
        raise ValueError(f"amount_usd must be a finite number, got {amount_usd!r}")
    ctx = current()
    get_recorder().record_revenue(
        user_id=user_id or ctx.user_id,
        amount_usd=float(amount_usd),
        plan=plan,
        team=team or ctx.team,
        project=project or ctx.project,
    )


def start_session(session_id: str | None = None, *, user_id: str | None = None) -> str:
    """Record a session start; returns its id (generated when not given)."""
    ctx = current()
    sid = session_id or uuid.uuid4().hex
    get_recorder().record_session(
        session_id=sid,
        state="started",
        user_id=user_id or ctx.user_id,
        feature=ctx.feature,
        team=ctx.team,
        project=ctx.project,
        timestamp=clock.now(),
    )
    return sid


def end_session(session_id: str, *, user_id: str | None = None) -> None:
    """Record a session end; its duration is known when the start was recorded here."""
    ctx = current()
    get_recorder().record_session(
        session_id=session_id,
        state="ended",
        user_id=user_id or ctx.user_id,
        feature=ctx.feature,
        team=ctx.team,
        project=ctx.project,
        timestamp=clock.now(),
    )


@contextlib.contextmanager
def session(session_id: str | None = None, *, user_id: str | None = None) -> Iterator[str]:
    """Start a session, attribute everything inside it to the session, end it on exit."""
    sid = start_session(session_id, user_id=user_id)
    try:
        with attribution(session_id=sid, user_id=user_id):
            yield sid
    finally:
        end_session(sid, user_id=user_id)
