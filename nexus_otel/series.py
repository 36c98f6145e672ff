"""Series keys: the attribute tuples one label combination needs, built once and cached."""

from __future__ import annotations

import functools
from datetime import date
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from .aggregate import AggregatingMetrics, HistogramState, Key, observe

if TYPE_CHECKING:
    from .usage import Usage

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
    """The series a call of one label combination updates, resolved at their first use.

    :meth:`record` updates all of a call's numbers in straight-line code: one handle
    per number cost a Python call each, more than most of the updates themselves.
    """

    __slots__ = (
        "_bounds",
        "_cells",
        "_counters",
        "_histograms",
        "_metrics",
        "_recorders",
        "_states",
        "epoch",
    )

    def __init__(self, metrics: AggregatingMetrics, keys: SeriesKeys) -> None:
        self.epoch = metrics.epoch
        self._metrics = metrics
        # Histograms: duration (successful calls), input tokens, output tokens, time to first chunk.
        self._histograms = histograms = (
            (sc.OPERATION_DURATION, keys.success),
            (sc.TOKEN_USAGE, keys.input_tokens),
            (sc.TOKEN_USAGE, keys.output_tokens),
            (sc.TIME_TO_FIRST_CHUNK, keys.ttft),
        )
        self._bounds = tuple(metrics.bounds(spec.name) for spec, _ in histograms)
        self._states: list[HistogramState | None] = [None] * 4
        # Metrics that record histograms elsewhere (ApiMetrics: on the app's SDK) take each
        # value through their own handle.
        self._recorders = (
            None
            if metrics.holds_histograms
            else tuple(metrics.histogram(spec, key) for spec, key in histograms)  # type: ignore[attr-defined]
        )
        # Counters: detailed tokens in DETAILED_TOKEN_TYPES order, then cost in COST_TYPES order.
        self._counters = (
            *((sc.TOKENS_DETAILED, keys.detailed[t]) for t in sc.DETAILED_TOKEN_TYPES),
            *((sc.COST, key) for key in keys.cost_by_type),
        )
        self._cells: list[list[float] | None] = [None] * len(self._counters)

    def _state(self, i: int) -> HistogramState:
        state = self._states[i] = self._metrics.histogram_state(*self._histograms[i])
        return state

    def _cell(self, i: int) -> list[float]:
        cell = self._cells[i] = self._metrics.counter_cell(*self._counters[i])
        return cell

    def record(
        self, duration: float | None, ttft: float | None, usage: Usage | None, cost: tuple[float, ...] | None
    ) -> None:
        """One call's numbers (``None``: not recorded here); :attr:`AggregatingMetrics.lock` held.

        ``cost`` is :func:`~nexus_otel.pricing.cost.price_floats`' tuple. Zero token
        counts and costs leave their counters untouched (and uncreated).
        """
        recorders = self._recorders
        if recorders is None:
            states, bounds = self._states, self._bounds
            if duration is not None:
                observe(states[0] or self._state(0), bounds[0], duration)
            if ttft is not None:
                observe(states[3] or self._state(3), bounds[3], ttft)
            if usage is not None:
                observe(states[1] or self._state(1), bounds[1], usage.input_tokens)
                observe(states[2] or self._state(2), bounds[2], usage.output_tokens)
        else:
            if duration is not None:
                recorders[0](duration)
            if ttft is not None:
                recorders[3](ttft)
            if usage is not None:
                recorders[1](usage.input_tokens)
                recorders[2](usage.output_tokens)
        if usage is None:
            return
        cells = self._cells
        # In DETAILED_TOKEN_TYPES order: cache_read, cache_write_5m, cache_write_1h, reasoning.
        n = usage.cache_read_tokens
        if n:
            (cells[0] or self._cell(0))[0] += n
        n = usage.cache_write_5m_tokens
        if n:
            (cells[1] or self._cell(1))[0] += n
        n = usage.cache_write_1h_tokens
        if n:
            (cells[2] or self._cell(2))[0] += n
        n = usage.reasoning_tokens
        if n:
            (cells[3] or self._cell(3))[0] += n
        if cost is None:
            return
        # In COST_TYPES order: input, cache_read, cache_write, output, reasoning.
        usd_input, usd_read, usd_write, usd_output, usd_reasoning, _total = cost
        if usd_input:
            (cells[4] or self._cell(4))[0] += usd_input
        if usd_read:
            (cells[5] or self._cell(5))[0] += usd_read
        if usd_write:
            (cells[6] or self._cell(6))[0] += usd_write
        if usd_output:
            (cells[7] or self._cell(7))[0] += usd_output
        if usd_reasoning:
            (cells[8] or self._cell(8))[0] += usd_reasoning


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
