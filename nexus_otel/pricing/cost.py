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
from .model import CostBreakdown, ModelPrice, Rates

__all__ = ["COST_QUANTUM", "price_floats", "price_usage", "usd"]

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


# Rates whose every price is a whole number of 1e-10 USD per 1M tokens (all real prices)
# are also kept as integers: a component is then tokens * units / 1e6 rounded half-even
# in integer arithmetic, exactly what the Decimal path computes, at a fraction of the cost.
_UNITS: dict[int, tuple[Rates, tuple[int, int, int, int, int, int] | None]] = {}
_PER_TOKEN: dict[int, tuple[Rates, tuple[int, int, int, int, int, int] | None]] = {}
_MILLION = 1_000_000


def _units_of(rates: Rates) -> tuple[int, int, int, int, int, int] | None:
    entry = _UNITS.get(id(rates))
    if entry is not None and entry[0] is rates:
        return entry[1]
    values = (
        rates.input,
        rates.effective_cache_read,
        rates.effective_cache_write_5m,
        rates.effective_cache_write_1h,
        rates.output,
        rates.effective_reasoning,
    )
    scaled = [v.scaleb(10, _CONTEXT) for v in values]
    units = tuple(int(v) for v in scaled) if all(v == v.to_integral_value() for v in scaled) else None
    _UNITS[id(rates)] = (rates, units)  # holds the Rates so its id is never reused while cached
    return units  # type: ignore[return-value]


def _per_token_units_of(rates: Rates) -> tuple[int, int, int, int, int, int] | None:
    """The rates in whole 1e-10 USD per *token*, when each is one (a price per 1M tokens
    with at most four decimals, as every real price is): a component is then an exact
    product, with nothing to round."""
    entry = _PER_TOKEN.get(id(rates))
    if entry is not None and entry[0] is rates:
        return entry[1]
    units = _units_of(rates)
    per_token = None
    if units is not None and not any(u % _MILLION for u in units):
        per_token = tuple(u // _MILLION for u in units)
    _PER_TOKEN[id(rates)] = (rates, per_token)  # type: ignore[assignment]
    return per_token  # type: ignore[return-value]


def _round_units(tokens: int, units: int) -> int:
    q, r = divmod(tokens * units, _MILLION)
    twice = 2 * r
    if twice > _MILLION or (twice == _MILLION and q & 1):
        q += 1
    return q


def _usd_units(n: int) -> Decimal:
    return _ZERO if not n else Decimal(n).scaleb(-10, _CONTEXT)


def price_usage(price: ModelPrice, usage: Usage) -> CostBreakdown:
    """Price a normalised :class:`Usage` with ``price``, at the tier its input tokens select.

    ``usage.input_tokens`` includes cache reads and writes and ``output_tokens``
    includes reasoning, so the plain input and output components take only what is
    left after the detailed kinds: no token is charged twice.
    """
    rates = price.rates_for(usage.input_tokens)
    units = _units_of(rates)
    if units is not None:
        inp, read, w5, w1, out, reason = units
        parts_units = (
            _round_units(usage.uncached_input_tokens, inp),
            _round_units(usage.cache_read_tokens, read),
            _round_units(usage.cache_write_5m_tokens, w5) + _round_units(usage.cache_write_1h_tokens, w1),
            _round_units(usage.visible_output_tokens, out),
            _round_units(usage.reasoning_tokens, reason),
        )
        return CostBreakdown(*map(_usd_units, parts_units), total=_usd_units(sum(parts_units)), price=price)
    return price_usage_decimal(price, usage)


def price_floats(price: ModelPrice, usage: Usage) -> tuple[float, float, float, float, float, float]:
    """:func:`price_usage`'s components and total as floats, in :data:`~nexus_otel.semconv.COST_TYPES` order.

    What metrics and events carry. The integer path divides a whole number of
    1e-10 USD by 10**10, which Python rounds correctly, so each float equals
    ``float()`` of the Decimal component without building any Decimal.
    """
    rates = price.rates_for(usage.input_tokens) if price.tiers else price.rates  # most prices have no tiers
    cache_read, cache_write_5m = usage.cache_read_tokens, usage.cache_write_5m_tokens
    cache_write_1h, reasoning = usage.cache_write_1h_tokens, usage.reasoning_tokens
    per_token = _per_token_units_of(rates)
    q = _QUANTA
    if per_token is not None:
        inp, read, w5, w1, out, reason = per_token
        a = (usage.input_tokens - cache_read - cache_write_5m - cache_write_1h) * inp
        b = cache_read * read
        c = cache_write_5m * w5 + cache_write_1h * w1
        d = (usage.output_tokens - reasoning) * out
        e = reasoning * reason
        return a / q, b / q, c / q, d / q, e / q, (a + b + c + d + e) / q
    units = _units_of(rates)
    if units is None:
        c = price_usage_decimal(price, usage)
        return (
            float(c.input), float(c.cache_read), float(c.cache_write),
            float(c.output), float(c.reasoning), float(c.total),
        )  # fmt: skip
    inp, read, w5, w1, out, reason = units
    # _round_units inlined: five Python calls per priced call cost more than the arithmetic.
    m = _MILLION
    amounts = (
        (usage.input_tokens - cache_read - cache_write_5m - cache_write_1h) * inp,
        cache_read * read,
        cache_write_5m * w5,
        cache_write_1h * w1,
        (usage.output_tokens - reasoning) * out,
        reasoning * reason,
    )
    rounded = []
    for amount in amounts:
        if not amount:  # cache writes and reasoning are usually zero
            rounded.append(0)
            continue
        whole, r = divmod(amount, m)
        if 2 * r > m or (2 * r == m and whole & 1):
            whole += 1
        rounded.append(whole)
    a, b, w5_units, w1_units, d, e = rounded
    c = w5_units + w1_units
    return a / q, b / q, c / q, d / q, e / q, (a + b + c + d + e) / q


_QUANTA = 10_000_000_000  # 1e-10 USD units per USD


def price_usage_decimal(price: ModelPrice, usage: Usage) -> CostBreakdown:
    """The reference Decimal computation (used for prices finer than 1e-10 USD per 1M tokens)."""
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
