"""The price table: layered sources, name resolution, date selection and costing.

Name resolution (first match wins; a match under the caller's provider beats one
under another provider, and a name known under several other providers is never
guessed):

1. the model name or an explicit alias, compared case-insensitively;
2. the last part of a ``prefix/model`` name (LiteLLM, OpenRouter style), whose
   prefix, when it names a provider, stands in for a missing provider;
3. the name without a trailing snapshot date ``-YYYY-MM-DD`` or ``-YYYYMMDD``
   (``gpt-4o-2024-08-06`` → ``gpt-4o``, ``claude-sonnet-4-5-20250929`` →
   ``claude-sonnet-4-5``), again as a model name or alias.

A model listed under an explicit name keeps its own price: ``gpt-4o-2024-05-13``
has an entry of its own and never falls back to ``gpt-4o``.
"""

from __future__ import annotations

import bisect
import os
import re
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..usage import Usage
from .cost import price_usage
from .model import CostBreakdown, ModelPrice
from .providers import provider_from_prefix

__all__ = ["ENV_PRICES_FILE", "PriceTable", "builtin_prices", "get_default_table", "reset_default_table"]

#: Extra price files (``os.pathsep``-separated) layered over the built-in table.
ENV_PRICES_FILE = "NEXUS_PRICES_FILE"
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_RESOLVE_CACHE_SIZE = 10_000

Key = tuple[str, str]


class PriceTable:
    """Prices of many models over time.

    Sources are layered in order: a later entry with the same provider, model and
    ``effective_from`` replaces an earlier one. Aliases add up across layers, so an
    override file only needs the prices it changes.
    """

    def __init__(self, prices: Iterable[ModelPrice] = ()) -> None:
        merged: dict[tuple[str, str, date], ModelPrice] = {}
        aliases: dict[Key, dict[str, None]] = {}
        for price in prices:
            merged[(price.provider, price.model, price.effective_from)] = price
            aliases.setdefault((price.provider, price.model), {}).update(dict.fromkeys(price.aliases))
        self._entries: dict[Key, list[ModelPrice]] = {}
        for price in sorted(merged.values(), key=lambda p: p.effective_from):
            self._entries.setdefault((price.provider, price.model), []).append(price)
        self._ordinals = {k: [p.effective_from.toordinal() for p in v] for k, v in self._entries.items()}
        self._aliases = {k: tuple(aliases[k]) for k in self._entries}
        self._by_model: dict[str, list[Key]] = {}
        self._by_alias: dict[str, list[Key]] = {}
        for key in sorted(self._entries):
            self._by_model.setdefault(key[1].lower(), []).append(key)
            for alias in self._aliases[key]:
                self._by_alias.setdefault(alias.lower(), []).append(key)
        self._resolved: dict[tuple[str | None, str], tuple[Key, str] | None] = {}

    @classmethod
    def load(cls, *paths: str | os.PathLike[str], include_builtin: bool = True) -> PriceTable:
        """The built-in table (unless ``include_builtin=False``) overlaid with ``paths`` in order.

        Raises :class:`~nexus_otel.pricing.PriceFileError` (``FILE:LINE: message``) for a bad file.
        """
        from .validate import load_price_file

        prices: list[ModelPrice] = list(builtin_prices()) if include_builtin else []
        for path in paths:
            prices.extend(load_price_file(path))
        return cls(prices)

    def __len__(self) -> int:
        """Number of distinct (provider, model) pairs."""
        return len(self._entries)

    def entries(self) -> list[ModelPrice]:
        """Every price entry, ordered by provider, model and date."""
        return [p for key in sorted(self._entries) for p in self._entries[key]]

    def history(self, *, provider: str, model: str) -> list[ModelPrice]:
        """All entries of one canonical (provider, model), oldest first."""
        return list(self._entries.get((provider, model), ()))

    def aliases(self, *, provider: str, model: str) -> tuple[str, ...]:
        """The explicit aliases of one canonical (provider, model), from every layer."""
        return self._aliases.get((provider, model), ())

    def providers(self) -> list[str]:
        return sorted({provider for provider, _ in self._entries})

    def resolve_model_name(self, *, provider: str | None, model: str) -> Key | None:
        """The canonical ``(provider, model)`` a reported name refers to, or None (see module doc)."""
        found = self._resolve(provider, model)
        return found[0] if found else None

    def explain_model_name(self, *, provider: str | None, model: str) -> str | None:
        """How :meth:`resolve_model_name` matched: ``name``, ``alias``, ``date suffix`` …, or None."""
        found = self._resolve(provider, model)
        return found[1] if found else None

    def lookup(
        self, *, provider: str | None, model: str, at: datetime | date | None = None
    ) -> ModelPrice | None:
        """The entry in force on the (UTC) day of ``at`` (default: today), or None.

        None means the name is unknown or the model had no price yet on that day.
        """
        found = self._resolve(provider, model)
        if found is None:
            return None
        key = found[0]
        i = bisect.bisect_right(self._ordinals[key], _day(at).toordinal())
        return self._entries[key][i - 1] if i else None

    def cost(
        self, *, provider: str | None, model: str, usage: Usage, at: datetime | date | None = None
    ) -> CostBreakdown | None:
        """Price ``usage`` once per token; None when the model has no price (never guessed)."""
        price = self.lookup(provider=provider, model=model, at=at)
        return None if price is None else price_usage(price, usage)

    def _resolve(self, provider: str | None, model: str) -> tuple[Key, str] | None:
        cache_key = (provider, model)
        try:
            return self._resolved[cache_key]
        except KeyError:
            pass
        found = self._search(provider, model)
        if len(self._resolved) < _RESOLVE_CACHE_SIZE:  # bounded: names come from responses
            self._resolved[cache_key] = found
        return found

    def _search(self, provider: str | None, model: str) -> tuple[Key, str] | None:
        candidates = _candidates(model.strip())
        if provider is None:
            hints = [h for h in (provider_from_prefix(p) for p in model.split("/")[:-1]) if h]
            provider = hints[-1] if hints else None
        if provider is not None:
            for name, rule in candidates:
                key = self._pick(name, rule, lambda keys: [k for k in keys if k[0] == provider])
                if key:
                    return key
        # Not under the caller's provider: a name that only one provider knows is still
        # unambiguous (a gateway or an OpenAI-compatible client reporting its own name).
        for name, rule in candidates:
            key = self._pick(name, rule, lambda keys: keys if len(keys) == 1 else [])
            if key:
                return key
        return None

    def _pick(self, name: str, rule: str, choose: Callable[[list[Key]], list[Key]]) -> tuple[Key, str] | None:
        for index, how in ((self._by_model, rule), (self._by_alias, _with_alias(rule))):
            keys = choose(index.get(name.lower(), []))
            if keys:
                return keys[0], how
        return None


def _with_alias(rule: str) -> str:
    return "alias" if rule == "name" else f"{rule} + alias"


def _candidates(model: str) -> list[tuple[str, str]]:
    out = [(model, "name")]
    if "/" in model:
        out.append((model.rsplit("/", 1)[1], "provider prefix"))
    for name, rule in list(out):
        stripped = _DATE_SUFFIX.sub("", name)
        if stripped != name:
            out.append((stripped, "date suffix" if rule == "name" else f"{rule} + date suffix"))
    return out


def _day(at: datetime | date | None) -> date:
    if at is None:
        return datetime.now(timezone.utc).date()
    if isinstance(at, datetime):
        return at.astimezone(timezone.utc).date() if at.tzinfo else at.date()
    return at


@lru_cache(maxsize=1)
def builtin_prices() -> tuple[ModelPrice, ...]:
    """The entries of the shipped ``nexus_otel/data/prices.yaml``, parsed once."""
    from .validate import parse_prices

    text = resources.files("nexus_otel").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    return tuple(parse_prices(text, "nexus_otel/data/prices.yaml"))


_default: PriceTable | None = None
_default_lock = threading.Lock()


def get_default_table() -> PriceTable:
    """The built-in table plus the files in ``$NEXUS_PRICES_FILE``, loaded once on first use."""
    global _default
    table = _default
    if table is None:
        with _default_lock:
            if _default is None:
                extra = [p for p in os.environ.get(ENV_PRICES_FILE, "").split(os.pathsep) if p]
                _default = PriceTable.load(*(Path(p) for p in extra))
            table = _default
    return table


def reset_default_table() -> None:
    """Forget the cached default table (after changing ``$NEXUS_PRICES_FILE``)."""
    global _default
    with _default_lock:
        _default = None
