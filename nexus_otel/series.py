"""Series keys: the attribute tuples one label combination needs, built once and cached."""

from __future__ import annotations

import functools
from datetime import date

from . import semconv as sc
from .aggregate import Key

__all__ = ["KEY_CACHE_SIZE", "SeriesKeys", "pricing_key", "utc_day"]

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
        "input_tokens",
        "labels",
        "output_tokens",
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


@functools.lru_cache(maxsize=64)
def _day(day_number: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + day_number)


def utc_day(unix_seconds: float) -> date:
    """The UTC calendar day of a timestamp: prices change at most daily, so this is all pricing needs."""
    return _day(int(unix_seconds // 86400))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def pricing_key(provider: str | None, model: str | None, response_model: str | None) -> Key:
    return tuple(
        (k, v)
        for k, v in ((sc.PROVIDER, provider), (sc.REQUEST_MODEL, model), (sc.RESPONSE_MODEL, response_model))
        if v is not None
    )
