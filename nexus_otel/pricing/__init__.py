"""Model prices and exact, once-per-token costing.

``get_default_table()`` loads the shipped table (``nexus_otel/data/prices.yaml``)
plus the files in ``$NEXUS_PRICES_FILE`` on first use. Importing this package
reads no file and does not import PyYAML: the file readers load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cost import COST_QUANTUM, price_usage
from .model import CostBreakdown, ModelPrice, PriceFileError, PriceTier, Rates
from .table import ENV_PRICES_FILE, PriceTable, get_default_table, reset_default_table

if TYPE_CHECKING:
    from .validate import load_price_file, parse_prices

__all__ = [
    "COST_QUANTUM",
    "ENV_PRICES_FILE",
    "CostBreakdown",
    "ModelPrice",
    "PriceFileError",
    "PriceTable",
    "PriceTier",
    "Rates",
    "get_default_table",
    "load_price_file",
    "parse_prices",
    "price_usage",
    "reset_default_table",
]

_LAZY = {"load_price_file", "parse_prices"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import validate

        return getattr(validate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
