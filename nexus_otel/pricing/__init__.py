"""Model prices and exact, once-per-token costing.

``get_default_table()`` loads the shipped table (``nexus_otel/data/prices.yaml``)
plus ``$NEXUS_PRICES_FILE`` on first use; importing this package reads no file.
"""

from .loader import PriceFileError, load_price_file, parse_prices
from .model import COST_QUANTUM, CostBreakdown, ModelPrice, PriceTier, Rates
from .table import PriceTable, get_default_table, reset_default_table

__all__ = [
    "COST_QUANTUM",
    "CostBreakdown",
    "ModelPrice",
    "PriceFileError",
    "PriceTable",
    "PriceTier",
    "Rates",
    "get_default_table",
    "load_price_file",
    "parse_prices",
    "reset_default_table",
]
