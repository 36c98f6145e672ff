"""Read and check price files (YAML), reporting every problem as ``FILE:LINE: message``.

The document is composed to YAML nodes rather than loaded to Python objects, so
every error can point at its line, and prices are read as ``Decimal`` from their
text (``2.50`` never passes through a float). YAML anchors and ``<<`` merge keys
work, so tiers and rates can be shared between entries.

Schema (``version`` is optional)::

    version: 1
    models:
      - provider: openai            # gen_ai.provider.name
        model: gpt-4o
        aliases: [chatgpt-4o-latest] # other names of this model
        effective_from: 2024-08-06   # first day (UTC) these prices apply
        input: 2.50                  # USD per 1M tokens (required)
        output: 10.00                # (required)
        cache_read: 1.25             # optional; default: input
        cache_write_5m: 3.75         # optional; default: input
        cache_write_1h: 6.00         # optional; default: cache_write_5m
        reasoning: 10.00             # optional; default: output
        tiers:                       # optional long-context prices for the whole request
          - above_input_tokens: 200000
            input: 5.00
            output: 20.00
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

from .model import RATE_KEYS, ModelPrice, PriceFileError, PriceTier, Rates

__all__ = ["MAX_PRICE", "load_price_file", "parse_prices"]

MODEL_KEYS = frozenset({"provider", "model", "aliases", "effective_from", "tiers", *RATE_KEYS})
TIER_KEYS = frozenset({"above_input_tokens", *RATE_KEYS})
#: Prices are per 1M tokens; anything above this is a unit mistake, not a price.
MAX_PRICE = Decimal(1_000_000)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Reader:
    """Collects line-numbered errors while walking the node tree."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []
        self._merger = yaml.constructor.SafeConstructor()

    def error(self, node: yaml.Node, message: str) -> None:
        self.errors.append(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, allowed: frozenset[str], what: str) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return None
        own: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if key_node.value in own:
                self.error(key_node, f"duplicate key {key_node.value!r} in {what}")
            own.add(key_node.value)
        try:
            # Resolve `<<: *anchor` merge keys; merged pairs come first, so the entry's own
            # keys override them when the pairs are read in order below.
            self._merger.flatten_mapping(node)
        except yaml.constructor.ConstructorError as exc:
            self.error(node, f"bad merge key in {what}: {exc.problem}")
            return None
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key not in allowed:
                self.error(key_node, f"unknown key {key!r} in {what}; allowed: {', '.join(sorted(allowed))}")
            else:
                out[key] = value_node
        return out

    def text(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self.error(node, f"{what} must be a non-empty string")
            return None
        return str(node.value).strip()

    def price(self, node: yaml.Node, what: str) -> Decimal | None:
        raw = node.value if isinstance(node, yaml.ScalarNode) else None
        try:
            value = Decimal(str(raw).strip().replace("_", "")) if raw is not None else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            self.error(node, f"{what} must be a number (USD per 1M tokens), got {_show(node)}")
            return None
        if value < 0:
            self.error(node, f"{what} must be >= 0, got {raw}")
            return None
        if value > MAX_PRICE:
            self.error(node, f"{what} is {raw} USD per 1M tokens; prices are per 1M tokens, not per token")
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


def _show(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def parse_prices(text: str, source: str = "<string>") -> list[ModelPrice]:
    """Parse a price document; raises :class:`PriceFileError` listing every problem found."""
    r = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise PriceFileError([f"{source}:{line}: not valid YAML: {problem}"]) from None
    if root is None:
        raise PriceFileError([f"{source}:1: empty price file; expected a 'models' list"])
    top = r.mapping(root, frozenset({"version", "models"}), "the price file")
    if top is None:
        raise PriceFileError(r.errors)
    if "version" in top and top["version"].value != "1":
        r.error(top["version"], f"unsupported version {top['version'].value!r}; this release reads version 1")
    models_node = top.get("models")
    if models_node is None:
        r.error(root, "missing 'models' list")
        raise PriceFileError(r.errors)
    if not isinstance(models_node, yaml.SequenceNode):
        r.error(models_node, "'models' must be a list")
        raise PriceFileError(r.errors)
    prices: list[ModelPrice] = []
    entries: dict[tuple[str, str, date], int] = {}
    names: dict[tuple[str, str], tuple[str, int]] = {}  # (provider, name) -> (model, line)
    for node in models_node.value:
        price = _model(r, node, source)
        if price is None:
            continue
        line = node.start_mark.line + 1
        key = (price.provider, price.model, price.effective_from)
        if key in entries:
            r.error(
                node,
                f"duplicate entry for {price.provider}/{price.model} effective {price.effective_from} "
                f"(first at line {entries[key]})",
            )
            continue
        entries[key] = line
        _check_names(r, node, price, names)
        prices.append(price)
    if r.errors:
        raise PriceFileError(r.errors)
    return prices


def _check_names(
    r: _Reader, node: yaml.Node, price: ModelPrice, names: dict[tuple[str, str], tuple[str, int]]
) -> None:
    """One name must mean one model per provider, or lookups would depend on file order."""
    line = node.start_mark.line + 1
    for name in (price.model, *price.aliases):
        key = (price.provider, name.lower())
        owner = names.setdefault(key, (price.model, line))
        if owner[0] != price.model:
            r.error(
                node,
                f"name {name!r} of {price.provider}/{price.model} already names "
                f"{price.provider}/{owner[0]} (line {owner[1]})",
            )


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
    what = model or "model entry"
    rates = r.rates(fields, node, what)
    aliases: tuple[str, ...] = ()
    if "aliases" in fields:
        alias_node = fields["aliases"]
        if not isinstance(alias_node, yaml.SequenceNode):
            r.error(alias_node, "aliases must be a list of model names")
        else:
            aliases = tuple(a for a in (r.text(x, "alias") for x in alias_node.value) if a and a != model)
    tiers = _tiers(r, fields["tiers"], what) if "tiers" in fields else []
    if len(r.errors) > before or not (provider and model and effective and rates):
        return None
    return ModelPrice(
        provider=provider,
        model=model,
        effective_from=effective,
        rates=rates,
        aliases=aliases,
        tiers=tuple(sorted(tiers, key=lambda t: t.above_input_tokens)),
        source=source,
    )


def _tiers(r: _Reader, node: yaml.Node, what: str) -> list[PriceTier]:
    if not isinstance(node, yaml.SequenceNode):
        r.error(node, "tiers must be a list")
        return []
    tiers: list[PriceTier] = []
    for tier_node in node.value:
        tier = _tier(r, tier_node, what)
        if tier is None:
            continue
        if any(t.above_input_tokens == tier.above_input_tokens for t in tiers):
            r.error(tier_node, f"two tiers of {what} above {tier.above_input_tokens} input tokens")
            continue
        tiers.append(tier)
    return tiers


def _tier(r: _Reader, node: yaml.Node, what: str) -> PriceTier | None:
    fields = r.mapping(node, TIER_KEYS, f"a tier of {what}")
    if fields is None:
        return None
    threshold_node = fields.get("above_input_tokens")
    if threshold_node is None:
        r.error(node, f"tier of {what} has no 'above_input_tokens' threshold")
        return None
    try:
        threshold = int(str(threshold_node.value).replace("_", ""))
        if threshold < 1:
            raise ValueError
    except ValueError:
        r.error(
            threshold_node,
            f"above_input_tokens must be a positive whole number of tokens, got {_show(threshold_node)}",
        )
        return None
    rates = r.rates(fields, node, f"tier above {threshold} of {what}")
    return PriceTier(threshold, rates) if rates else None


def _date(r: _Reader, node: yaml.Node) -> date | None:
    raw = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        r.error(node, f"effective_from must be a date YYYY-MM-DD, got {_show(node)}")
        return None


def load_price_file(path: str | Path) -> list[ModelPrice]:
    """Read and check one price file; raises :class:`PriceFileError` (``FILE:LINE: message``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PriceFileError([f"{p}: cannot read price file: {reason}"]) from None
    return parse_prices(text, str(p))
