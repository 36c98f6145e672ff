"""The price table: lookup by provider, model, alias and date; cost of a normalised usage."""

from __future__ import annotations

import bisect
import os
import re
import threading
from collections.abc import Iterable
from datetime import date, datetime
from importlib import resources
from pathlib import Path

from ..usage import Usage
from .loader import load_price_file, parse_prices
from .model import CostBreakdown, ModelPrice, usd

__all__ = ["PriceTable", "get_default_table", "reset_default_table"]

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


class PriceTable:
    """Prices of many models over time. Later sources override earlier ones per entry."""

    def __init__(self, prices: Iterable[ModelPrice] = ()) -> None:
        merged: dict[tuple[str, str, date], ModelPrice] = {}
        for price in prices:
            merged[(price.provider, price.model, price.effective_from)] = price
        self._by_key: dict[tuple[str, str], list[ModelPrice]] = {}
        for price in sorted(merged.values(), key=lambda p: p.effective_from):
            self._by_key.setdefault((price.provider, price.model), []).append(price)
        self._dates = {k: [p.effective_from.toordinal() for p in v] for k, v in self._by_key.items()}
        self._names: dict[str, set[tuple[str, str]]] = {}
        for provider, model in self._by_key:
            for name in (model, *(a for p in self._by_key[(provider, model)] for a in p.aliases)):
                self._names.setdefault(name.lower(), set()).add((provider, model))
        self._resolved: dict[tuple[str | None, str], tuple[str, str] | None] = {}

    @classmethod
    def load(cls, *paths: str | os.PathLike[str], include_builtin: bool = True) -> PriceTable:
        prices: list[ModelPrice] = list(builtin_prices()) if include_builtin else []
        for path in paths:
            prices.extend(load_price_file(path))
        return cls(prices)

    def __len__(self) -> int:
        return len(self._by_key)

    def entries(self) -> list[ModelPrice]:
        """Every price entry, by provider, model and date."""
        return [p for key in sorted(self._by_key) for p in self._by_key[key]]

    def resolve_model_name(self, *, provider: str | None, model: str) -> tuple[str, str] | None:
        """The ``(provider, model)`` a name refers to: exact, alias, ``provider/`` prefix or date suffix."""
        cache_key = (provider, model)
        if cache_key in self._resolved:
            return self._resolved[cache_key]
        found = None
        for candidate in _candidates(model):
            keys = self._names.get(candidate.lower())
            if not keys:
                continue
            same_provider = sorted(k for k in keys if k[0] == provider)
            if same_provider:
                found = same_provider[0]
                break
            # A name known under one other provider only (e.g. a gateway reporting its own
            # provider name) is unambiguous; one known under several is not guessed.
            if len(keys) == 1:
                found = next(iter(keys))
                break
        if len(self._resolved) < 10_000:
            self._resolved[cache_key] = found
        return found

    def lookup(
        self, *, provider: str | None, model: str, at: datetime | date | None = None
    ) -> ModelPrice | None:
        """The entry in force at ``at`` (default: the latest), or None for an unknown model."""
        key = self.resolve_model_name(provider=provider, model=model)
        if key is None:
            return None
        entries = self._by_key[key]
        if at is None:
            return entries[-1]
        day = at.date() if isinstance(at, datetime) else at
        i = bisect.bisect_right(self._dates[key], day.toordinal())
        return entries[i - 1] if i else None

    def cost(
        self, *, provider: str | None, model: str, usage: Usage, at: datetime | date | None = None
    ) -> CostBreakdown | None:
        """Price ``usage`` once per token; None when the model has no price (never guessed)."""
        price = self.lookup(provider=provider, model=model, at=at)
        if price is None:
            return None
        r = price.rates_for(usage.input_tokens)
        write_5m = r.cache_write_5m if r.cache_write_5m is not None else r.input
        write_1h = r.cache_write_1h if r.cache_write_1h is not None else write_5m
        return CostBreakdown(
            input=usd(usage.uncached_input_tokens, r.input),
            cache_read=usd(usage.cache_read_tokens, r.cache_read if r.cache_read is not None else r.input),
            cache_write=usd(usage.cache_write_5m_tokens, write_5m)
            + usd(usage.cache_write_1h_tokens, write_1h),
            output=usd(usage.visible_output_tokens, r.output),
            reasoning=usd(usage.reasoning_tokens, r.reasoning if r.reasoning is not None else r.output),
            price=price,
        )


def _candidates(model: str) -> list[str]:
    names = [model]
    if "/" in model:  # "openai/gpt-4o" (LiteLLM, OpenRouter style)
        names.append(model.split("/", 1)[1])
    for name in list(names):
        stripped = _DATE_SUFFIX.sub("", name)
        if stripped != name:
            names.append(stripped)
    return names


def builtin_prices() -> list[ModelPrice]:
    text = resources.files("nexus_otel").joinpath("data/prices.yaml").read_text()
    return parse_prices(text, "nexus_otel/data/prices.yaml")


_default: PriceTable | None = None
_default_lock = threading.Lock()


def get_default_table() -> PriceTable:
    """The built-in table plus the files in ``$NEXUS_PRICES_FILE`` (os.pathsep-separated), loaded once."""
    global _default
    table = _default
    if table is None:
        with _default_lock:
            if _default is None:
                extra = [p for p in os.environ.get("NEXUS_PRICES_FILE", "").split(os.pathsep) if p]
                _default = PriceTable.load(*(Path(p) for p in extra))
            table = _default
    return table


def reset_default_table() -> None:
    """Forget the cached default table (after changing ``$NEXUS_PRICES_FILE``)."""
    global _default
    with _default_lock:
        _default = None
