"""Price records and cost breakdowns. All money is ``Decimal``; prices are USD per 1M tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["COST_QUANTUM", "CostBreakdown", "ModelPrice", "PriceTier", "Rates"]

#: Every cost component is rounded to this many USD (a ten-billionth of a dollar).
COST_QUANTUM = Decimal("1e-10")
_PER_TOKEN = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens. ``None`` means "billed like" (see :meth:`ModelPrice.cost`)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Rates for the whole request when its input exceeds ``above_input_tokens``."""

    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    provider: str
    model: str
    effective_from: date
    rates: Rates
    aliases: tuple[str, ...] = ()
    tiers: tuple[PriceTier, ...] = ()  # ascending thresholds
    source: str = "builtin"

    def rates_for(self, input_tokens: int) -> Rates:
        rates = self.rates
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                rates = tier.rates
        return rates


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """Each billed token in exactly one component; ``total`` is their sum."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    price: ModelPrice

    @property
    def total(self) -> Decimal:
        return self.input + self.cache_read + self.cache_write + self.output + self.reasoning

    def as_floats(self) -> dict[str, float]:
        """Components keyed by ``nexus.cost.type`` value."""
        return {
            "input": float(self.input),
            "cache_read": float(self.cache_read),
            "cache_write": float(self.cache_write),
            "output": float(self.output),
            "reasoning": float(self.reasoning),
        }


def usd(tokens: int, per_million: Decimal) -> Decimal:
    """Cost of ``tokens`` at ``per_million`` USD, rounded half-even to :data:`COST_QUANTUM`."""
    if not tokens:
        return Decimal(0)
    return (tokens * per_million / _PER_TOKEN).quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)
