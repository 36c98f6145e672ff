"""Read price files (YAML) into :class:`ModelPrice` records, with line-numbered errors.

The file is composed to YAML nodes rather than loaded to Python objects, so
every error can point at its line, and prices are read as ``Decimal`` from
their text (``2.50`` never passes through a float).

Schema::

    version: 1
    models:
      - provider: openai            # gen_ai.provider.name
        model: gpt-4o
        aliases: [gpt-4o-2024-08-06]
        effective_from: 2024-08-06
        input: 2.50                  # USD per 1M tokens
        output: 10.00
        cache_read: 1.25             # optional; default: input
        cache_write_5m: 3.75         # optional; default: input
        cache_write_1h: 6.00         # optional; default: cache_write_5m
        reasoning: 10.00             # optional; default: output
        tiers:                       # optional long-context prices
          - above_input_tokens: 200000
            input: 5.00
            output: 20.00
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

from .model import ModelPrice, PriceTier, Rates

__all__ = ["PriceFileError", "load_price_file", "parse_prices"]

RATE_KEYS = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning")
MODEL_KEYS = {"provider", "model", "aliases", "effective_from", "tiers", *RATE_KEYS}
TIER_KEYS = {"above_input_tokens", *RATE_KEYS}


class PriceFileError(ValueError):
    """A price file is invalid. ``errors`` holds one ``FILE:LINE: message`` per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class _Reader:
    source: str
    errors: list[str] = field(default_factory=list)

    def error(self, node: yaml.Node, message: str) -> None:
        self.errors.append(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, allowed: set[str], what: str) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return None
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key not in allowed:
                self.error(key_node, f"unknown key {key!r} in {what}; allowed: {', '.join(sorted(allowed))}")
            elif key in out:
                self.error(key_node, f"duplicate key {key!r} in {what}")
            else:
                out[key] = value_node
        return out

    def text(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self.error(node, f"{what} must be a non-empty string")
            return None
        return str(node.value).strip()

    def price(self, node: yaml.Node, what: str) -> Decimal | None:
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{what} must be a number (USD per 1M tokens)")
            return None
        try:
            value = Decimal(str(node.value).strip())
        except InvalidOperation:
            self.error(node, f"{what} must be a number (USD per 1M tokens), got {node.value!r}")
            return None
        if not value.is_finite() or value < 0:
            self.error(node, f"{what} must be a finite number >= 0, got {node.value}")
            return None
        return value

    def rates(self, fields: dict[str, yaml.Node], owner: yaml.Node, what: str) -> Rates | None:
        values = {k: self.price(fields[k], f"{what} {k}") for k in RATE_KEYS if k in fields}
        missing = [k for k in ("input", "output") if k not in fields]
        if missing:
            self.error(owner, f"{what} is missing {' and '.join(missing)} price")
            return None
        if any(v is None for v in values.values()):
            return None
        return Rates(**values)  # type: ignore[arg-type]


def parse_prices(text: str, source: str = "<string>") -> list[ModelPrice]:
    """Parse a price document; raises :class:`PriceFileError` listing every problem."""
    r = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "1"
        raise PriceFileError([f"{source}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if root is None:
        raise PriceFileError([f"{source}:1: empty price file; expected a 'models' list"])
    top = r.mapping(root, {"version", "models"}, "the price file")
    if top is None:
        raise PriceFileError(r.errors)
    if "version" in top and top["version"].value not in ("1",):
        r.error(
            top["version"], f"unsupported version {top['version'].value!r}; this nexus-otel reads version 1"
        )
    models_node = top.get("models")
    if models_node is None:
        r.error(root, "missing 'models' list")
        raise PriceFileError(r.errors)
    if not isinstance(models_node, yaml.SequenceNode):
        r.error(models_node, "'models' must be a list")
        raise PriceFileError(r.errors)
    prices: list[ModelPrice] = []
    seen: dict[tuple[str, str, date], int] = {}
    for node in models_node.value:
        price = _model(r, node, source)
        if price is None:
            continue
        key = (price.provider, price.model, price.effective_from)
        if key in seen:
            r.error(
                node,
                f"duplicate entry for {price.provider}/{price.model} effective {price.effective_from} "
                f"(first at line {seen[key]})",
            )
            continue
        seen[key] = node.start_mark.line + 1
        prices.append(price)
    if r.errors:
        raise PriceFileError(r.errors)
    return prices


def _model(r: _Reader, node: yaml.Node, source: str) -> ModelPrice | None:
    before = len(r.errors)
    fields = r.mapping(node, MODEL_KEYS, "a model entry")
    if fields is None:
        return None
    for required in ("provider", "model", "effective_from"):
        if required not in fields:
            r.error(node, f"model entry is missing {required!r}")
    provider = r.text(fields["provider"], "provider") if "provider" in fields else None
    model = r.text(fields["model"], "model") if "model" in fields else None
    effective = _date(r, fields["effective_from"]) if "effective_from" in fields else None
    what = f"{model or 'model'}"
    rates = r.rates(fields, node, what)
    aliases: tuple[str, ...] = ()
    if "aliases" in fields:
        a = fields["aliases"]
        if not isinstance(a, yaml.SequenceNode):
            r.error(a, "aliases must be a list of model names")
        else:
            aliases = tuple(t for t in (r.text(x, "alias") for x in a.value) if t)
    tiers: list[PriceTier] = []
    if "tiers" in fields:
        t = fields["tiers"]
        if not isinstance(t, yaml.SequenceNode):
            r.error(t, "tiers must be a list")
        else:
            for tier_node in t.value:
                tier = _tier(r, tier_node, what)
                if tier is not None:
                    tiers.append(tier)
    if len(r.errors) > before or not (provider and model and effective and rates):
        return None
    return ModelPrice(
        provider=provider,
        model=model,
        effective_from=effective,
        rates=rates,
        aliases=aliases,
        tiers=tuple(sorted(tiers, key=lambda x: x.above_input_tokens)),
        source=source,
    )


def _tier(r: _Reader, node: yaml.Node, what: str) -> PriceTier | None:
    fields = r.mapping(node, TIER_KEYS, f"a tier of {what}")
    if fields is None:
        return None
    threshold_node = fields.get("above_input_tokens")
    if threshold_node is None:
        r.error(node, f"tier of {what} has no 'above_input_tokens' threshold")
        return None
    try:
        threshold = int(str(threshold_node.value))
        if threshold < 1:
            raise ValueError
    except ValueError:
        r.error(
            threshold_node, f"above_input_tokens must be a positive integer, got {threshold_node.value!r}"
        )
        return None
    rates = r.rates(fields, node, f"tier above {threshold} of {what}")
    return PriceTier(threshold, rates) if rates else None


def _date(r: _Reader, node: yaml.Node) -> date | None:
    try:
        return date.fromisoformat(str(node.value).strip())
    except ValueError:
        r.error(node, f"effective_from must be a date YYYY-MM-DD, got {node.value!r}")
        return None


def load_price_file(path: str | Path) -> list[ModelPrice]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PriceFileError([f"{p}:0: cannot read price file: {exc.strerror}"]) from None
    return parse_prices(text, str(p))
