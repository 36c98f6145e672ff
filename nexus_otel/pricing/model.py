"""Price records and cost breakdowns. All money is ``Decimal``; prices are USD per 1M tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from ..semconv import COST_TYPES

__all__ = ["RATE_KEYS", "CostBreakdown", "ModelPrice", "PriceFileError", "PriceTier", "Rates"]

#: The price fields of a model entry or tier, as spelled in price files.
RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")


class PriceFileError(ValueError):
    """A price file is invalid. ``errors`` holds one ``FILE:LINE: message`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens.

    An optional rate left ``None`` is billed like another one: ``cache_read`` and
    ``cache_write_5m`` like ``input``, ``cache_write_1h`` like ``cache_write_5m``,
    ``reasoning`` like ``output``. Defaulting to the undiscounted rate means a
    missing discount overstates cost rather than hiding it.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None

    @property
    def effective_cache_read(self) -> Decimal:
        return self.input if self.cache_read is None else self.cache_read

    @property
    def effective_cache_write_5m(self) -> Decimal:
        return self.input if self.cache_write_5m is None else self.cache_write_5m

    @property
    def effective_cache_write_1h(self) -> Decimal:
        return self.effective_cache_write_5m if self.cache_write_1h is None else self.cache_write_1h

    @property
    def effective_reasoning(self) -> Decimal:
        return self.output if self.reasoning is None else self.reasoning


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Rates for the *whole* request when its input tokens exceed ``above_input_tokens``."""

    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One price entry: a model's rates from ``effective_from`` until a later entry replaces them."""

    provider: str
    model: str
    effective_from: date
    rates: Rates
    aliases: tuple[str, ...] = ()
    tiers: tuple[PriceTier, ...] = ()  # ascending thresholds
    source: str = "builtin"

    def rates_for(self, input_tokens: int) -> Rates:
        """The rates of the highest tier whose threshold ``input_tokens`` exceeds (else the base)."""
        rates = self.rates
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                rates = tier.rates
        return rates


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """Cost of one call in USD; each billed token sits in exactly one component.

    ``input`` covers uncached input only, ``output`` visible output only (output
    minus reasoning); ``total`` is the sum of the already-rounded components.
    ``price`` is the entry that priced the call.
    """

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    total: Decimal
    price: ModelPrice

    def as_floats(self) -> dict[str, float]:
        """Components keyed by ``nexus.cost.type`` value (:data:`nexus_otel.semconv.COST_TYPES`)."""
        return {cost_type: float(getattr(self, cost_type)) for cost_type in COST_TYPES}
