"""Series keys: the attribute tuples one label combination needs, built once and cached."""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

from . import semconv as sc
from .aggregate import AggregatingMetrics, Key

__all__ = ["KEY_CACHE_SIZE", "CallHandles", "SeriesKeys", "day_date", "pricing_key", "utc_day"]

KEY_CACHE_SIZE = 10_000


class SeriesKeys:
    """Every series key one label combination needs, built once."""

    __slots__ = (
        "base",
        "cost",
        "cost_by_type",
        "detailed",
        "error",
        "folded",
        "handles",
        "input_tokens",
        "labels",
        "output_tokens",
        "price",
        "success",
        "ttft",
    )

    def __init__(
        self, base: Key, routed: str, labels: tuple[str | None, ...], folded: tuple[str, ...]
    ) -> None:
        r = (sc.ROUTED, routed)
        self.base = base
        self.labels = labels
        self.folded = folded
        self.success = (*base, (sc.OUTCOME, sc.OUTCOME_SUCCESS), r)
        self.error = (*base, (sc.OUTCOME, sc.OUTCOME_ERROR), r)
        self.ttft = (*base, r)
        self.input_tokens = (*base, (sc.TOKEN_TYPE, "input"), r)
        self.output_tokens = (*base, (sc.TOKEN_TYPE, "output"), r)
        self.detailed = {t: (*base, (sc.DETAILED_TOKEN_TYPE, t)) for t in sc.DETAILED_TOKEN_TYPES}
        self.cost = {t: (*base, (sc.COST_TYPE, t), r) for t in sc.COST_TYPES}
        self.cost_by_type = tuple(self.cost[t] for t in sc.COST_TYPES)
        self.price: tuple[int, Any] | None = None  # (UTC day number, price entry or None) last used
        self.handles: CallHandles | None = None  # made at the first call, by the recorder


class CallHandles:
    """Series handles (see :meth:`AggregatingMetrics.counter`) for what a successful call records."""

    __slots__ = ("cost", "detailed", "duration", "epoch", "input_tokens", "output_tokens", "ttft")

    def __init__(self, metrics: AggregatingMetrics, keys: SeriesKeys) -> None:
        self.epoch = metrics.epoch
        self.duration = metrics.histogram(sc.OPERATION_DURATION, keys.success)
        self.ttft = metrics.histogram(sc.TIME_TO_FIRST_CHUNK, keys.ttft)
        self.input_tokens = metrics.histogram(sc.TOKEN_USAGE, keys.input_tokens)
        self.output_tokens = metrics.histogram(sc.TOKEN_USAGE, keys.output_tokens)
        self.detailed = tuple(
            metrics.counter(sc.TOKENS_DETAILED, keys.detailed[t]) for t in sc.DETAILED_TOKEN_TYPES
        )
        self.cost = tuple(metrics.counter(sc.COST, key) for key in keys.cost_by_type)


@functools.lru_cache(maxsize=64)
def day_date(day_number: int) -> date:
    """The UTC calendar day ``day_number`` days after 1970-01-01."""
    return date.fromordinal(_EPOCH_ORDINAL + day_number)


def utc_day(unix_seconds: float) -> date:
    """The UTC calendar day of a timestamp: prices change at most daily, so this is all pricing needs."""
    return day_date(int(unix_seconds // 86400))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def pricing_key(provider: str | None, model: str | None, response_model: str | None) -> Key:
    return tuple(
        (k, v)
        for k, v in ((sc.PROVIDER, provider), (sc.REQUEST_MODEL, model), (sc.RESPONSE_MODEL, response_model))
        if v is not None
    )
