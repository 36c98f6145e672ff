"""Request parameters: the time range (``period``) and the filters, validated.

``period`` is one of :data:`PERIODS` or ``custom`` with ``from`` and ``to``
(ISO 8601 date or date-time, or Unix seconds; naive times are UTC). Relative
periods end at the next whole minute after now, so their ends fall on the
rollup's buckets and repeated requests within a minute agree. ``mtd`` starts
at 00:00 UTC on the 1st of the current month.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from nexus_otel import clock

from .errors import ApiError

__all__ = ["FILTERS", "PERIODS", "Query", "TimeRange", "iso_utc", "parse_query", "parse_time"]

#: period name -> length in seconds (``mtd`` and ``custom`` are computed)
PERIODS: dict[str, int] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
#: The filters every endpoint accepts; each must match exactly.
FILTERS: tuple[str, ...] = ("team", "project", "model", "provider", "feature", "user_id")
#: Longest custom range: the rollup's aggregates go back further, but a year is what the UI needs.
MAX_RANGE_S = 400 * 86400
_MAX_VALUE_LENGTH = 256


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``start <= t < end`` in Unix seconds; ``period`` is how it was asked for."""

    start: float
    end: float
    period: str

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def days(self) -> float:
        return self.seconds / 86400

    def previous(self) -> TimeRange:
        """The range of equal length just before this one (for growth and churn)."""
        return TimeRange(self.start - self.seconds, self.start, f"previous {self.period}")

    def to_dict(self) -> dict[str, object]:
        return {"period": self.period, "from": iso_utc(self.start), "to": iso_utc(self.end)}


@dataclass(frozen=True, slots=True)
class Query:
    """A validated request: time range plus exact-match filters (after API-key scoping)."""

    range: TimeRange
    filters: tuple[tuple[str, str], ...] = field(default=())

    @property
    def filter_map(self) -> dict[str, str]:
        return dict(self.filters)

    def get(self, name: str) -> str | None:
        return self.filter_map.get(name)

    def with_filters(self, **values: str | None) -> Query:
        merged = self.filter_map
        for name, value in values.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return replace(self, filters=tuple(sorted(merged.items())))

    def with_range(self, time_range: TimeRange) -> Query:
        return replace(self, range=time_range)

    def to_dict(self) -> dict[str, object]:
        return {**self.range.to_dict(), "filters": self.filter_map}


def iso_utc(t: float, timespec: str = "auto") -> str:
    """Unix seconds as ISO 8601 in UTC with a ``Z`` (``timespec`` as for :meth:`datetime.isoformat`)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(text: str, name: str) -> float:
    """Unix seconds from ISO 8601 (date or date-time; naive is UTC) or a number of seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                400,
                f"{name}={text!r} is not a time; "
                "use ISO 8601 (2026-01-31 or 2026-01-31T12:00:00Z) or Unix seconds",
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"{name}={text!r} is not a time")
    return value


def _time_range(args: Mapping[str, str], *, default_period: str, now: float) -> TimeRange:
    period = args.get("period", default_period)
    has_bounds = "from" in args or "to" in args
    if period == "custom" or (has_bounds and "period" not in args):
        if "from" not in args or "to" not in args:
            raise ApiError(400, "period=custom needs both from= and to=")
        start, end = parse_time(args["from"], "from"), parse_time(args["to"], "to")
        if end <= start:
            raise ApiError(400, f"to ({args['to']}) must be after from ({args['from']})")
        if end - start > MAX_RANGE_S:
            raise ApiError(400, f"a custom range may span at most {MAX_RANGE_S // 86400} days")
        return TimeRange(start, end, "custom")
    if has_bounds:
        raise ApiError(400, f"from= and to= go with period=custom, not period={period}")
    end = math.floor(now / 60) * 60 + 60
    if period == "mtd":
        today = datetime.fromtimestamp(now, timezone.utc)
        start = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        return TimeRange(start, end, "mtd")
    length = PERIODS.get(period)
    if length is None:
        choices = ", ".join([*PERIODS, "mtd", "custom"])
        raise ApiError(400, f"unknown period {period!r}; use one of {choices}")
    return TimeRange(end - length, end, period)


def parse_query(
    args: Mapping[str, str],
    *,
    default_period: str = "7d",
    extra: tuple[str, ...] = (),
    now: float | None = None,
) -> Query:
    """Validate ``period``/``from``/``to`` and the filters; anything else not in ``extra`` is a 400."""
    known = {"period", "from", "to", *FILTERS, *extra}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ApiError(400, f"unknown parameter(s) {', '.join(unknown)}; filters are {', '.join(FILTERS)}")
    time_range = _time_range(args, default_period=default_period, now=clock.now() if now is None else now)
    filters = []
    for name in FILTERS:
        if name not in args:
            continue
        value = args[name]
        if not isinstance(value, str) or not value or len(value) > _MAX_VALUE_LENGTH:
            raise ApiError(
                400, f"filter {name} must be a non-empty string of at most {_MAX_VALUE_LENGTH} characters"
            )
        filters.append((name, value))
    return Query(time_range, tuple(filters))
