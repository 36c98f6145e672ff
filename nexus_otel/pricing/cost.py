"""Decimal costing: every token priced once, with rounding rules pinned by tests.

Rules:

* prices are ``Decimal`` read from their text in the price file (never a float);
* a component costs ``tokens * price_per_1M / 1_000_000``, rounded half-even to
  :data:`COST_QUANTUM` (a ten-billionth of a dollar);
* ``total`` is the sum of the rounded components, so components always add up.

Arithmetic runs in a private decimal context, so an application that lowers the
precision of its thread's context cannot change what a call costs.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

from ..usage import Usage
from .model import CostBreakdown, ModelPrice

__all__ = ["COST_QUANTUM", "price_usage", "usd"]

#: Every cost component is rounded to this many USD.
COST_QUANTUM = Decimal("1e-10")
# 60 digits hold any token count an int64 counter reaches at any price a file accepts.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)
_ZERO = Decimal(0).quantize(COST_QUANTUM)


def usd(tokens: int, per_million: Decimal) -> Decimal:
    """Cost of ``tokens`` at ``per_million`` USD per 1M tokens, rounded half-even to :data:`COST_QUANTUM`."""
    if not tokens:
        return _ZERO
    # scaleb(-6) divides by 1,000,000 exactly (it only moves the exponent), and is cheaper.
    exact = _CONTEXT.multiply(tokens, per_million).scaleb(-6, _CONTEXT)
    return exact.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN, context=_CONTEXT)


def price_usage(price: ModelPrice, usage: Usage) -> CostBreakdown:
    """Price a normalised :class:`Usage` with ``price``, at the tier its input tokens select.

    ``usage.input_tokens`` includes cache reads and writes and ``output_tokens``
    includes reasoning, so the plain input and output components take only what is
    left after the detailed kinds: no token is charged twice.
    """
    rates = price.rates_for(usage.input_tokens)
    add = _CONTEXT.add
    cache_write = add(
        usd(usage.cache_write_5m_tokens, rates.effective_cache_write_5m),
        usd(usage.cache_write_1h_tokens, rates.effective_cache_write_1h),
    )
    parts = (
        usd(usage.uncached_input_tokens, rates.input),
        usd(usage.cache_read_tokens, rates.effective_cache_read),
        cache_write,
        usd(usage.visible_output_tokens, rates.output),
        usd(usage.reasoning_tokens, rates.effective_reasoning),
    )
    total = _ZERO
    for part in parts:
        total = add(total, part)
    return CostBreakdown(*parts, total=total, price=price)
