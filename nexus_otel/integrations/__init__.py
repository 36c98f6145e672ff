"""Per-instance client integrations: no global monkeypatching."""

from .anthropic import instrument_anthropic
from .openai import instrument_openai

__all__ = ["instrument_anthropic", "instrument_openai"]
