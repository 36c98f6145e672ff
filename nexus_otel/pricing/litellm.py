"""Convert LiteLLM's ``model_prices_and_context_window.json`` to nexus-otel's price YAML.

LiteLLM keeps the most widely maintained machine-readable price list; its values
are USD per token. The conversion reads them as ``Decimal`` (the JSON text is
never turned into a float), multiplies by one million, maps LiteLLM provider
names to OpenTelemetry ``gen_ai.provider.name`` values and keeps the modes that
bill tokens of a conversation (``chat``, ``completion``, ``responses``).
Long-context prices (``*_above_200k_tokens`` and other ``*_above_<N>k_tokens``)
become tiers above ``N * 1000`` input tokens.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from .providers import LITELLM_PROVIDERS

__all__ = ["CHAT_MODES", "ImportResult", "convert_litellm"]

CHAT_MODES = frozenset({"chat", "completion", "responses"})
#: our rate key -> LiteLLM per-token field.
_FIELDS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write_5m": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "reasoning": "output_cost_per_reasoning_token",
}
_THEIRS = {theirs: ours for ours, theirs in _FIELDS.items()}
_TIER_FIELD = re.compile(r"^(?P<field>.+)_above_(?P<k>\d+)k_tokens$")
_MILLION = Decimal(1_000_000)


@dataclass
class ImportResult:
    """Converted entries (plain dicts in price-file schema) and why others were left out."""

    models: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count

    @property
    def imported(self) -> int:
        return len(self.models)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        total = sum(self.skipped.values())
        return f"imported {self.imported} models; skipped {total}" + (f" ({reasons})" if reasons else "")

    def to_yaml(self, *, source: str = "model_prices_and_context_window.json") -> str:
        header = (
            f"# Converted from LiteLLM's {source} by `nexus-otel prices import`.\n"
            "# USD per 1M tokens. Check with `nexus-otel prices --check FILE`.\n"
        )
        body = yaml.dump({"version": 1, "models": self.models}, Dumper=_Dumper, sort_keys=False, width=120)
        return header + body


class _Dumper(yaml.SafeDumper):
    """Writes ``Decimal`` prices as plain YAML numbers, digit for digit, and no ``&id`` anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    text = format(value, "f")
    tag = "tag:yaml.org,2002:float" if "." in text else "tag:yaml.org,2002:int"
    return dumper.represent_scalar(tag, text)


_Dumper.add_representer(Decimal, _represent_decimal)


def _per_million(value: Any) -> Decimal | None:
    """A LiteLLM per-token price as USD per 1M tokens; None when it is not a price."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        return None
    try:
        per_token = Decimal(str(value))
    except InvalidOperation:
        return None
    if not per_token.is_finite() or per_token < 0:
        return None
    per_million = (per_token * _MILLION).normalize()
    # normalize() may leave an exponent (3E+1); rebuild so the YAML shows 30, not 3E+1.
    return per_million.quantize(Decimal(1)) if per_million == per_million.to_integral() else per_million


def _entry(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    rates: dict[str, Decimal] = {}
    tiers: dict[int, dict[str, Decimal]] = {}
    for theirs, raw in spec.items():
        if raw is None:
            continue
        tier = _TIER_FIELD.match(theirs)
        base = tier.group("field") if tier else theirs
        ours = _THEIRS.get(base)
        if ours is None:
            continue
        value = _per_million(raw)
        if value is None:
            return None, f"bad price in {theirs}"
        if tier:
            tiers.setdefault(int(tier.group("k")) * 1000, {})[ours] = value
        else:
            rates[ours] = value
    if "input" not in rates or "output" not in rates:
        return None, "no input/output price"
    entry: dict[str, Any] = _in_schema_order(rates)
    # A tier without both base rates cannot price a request on its own; LiteLLM lists
    # e.g. only a long-context input price for some models, which we leave out.
    complete = [(k, t) for k, t in sorted(tiers.items()) if "input" in t and "output" in t]
    if complete:
        entry["tiers"] = [{"above_input_tokens": k, **_in_schema_order(t)} for k, t in complete]
    return entry, None


def _in_schema_order(rates: dict[str, Decimal]) -> dict[str, Decimal]:
    return {k: rates[k] for k in _FIELDS if k in rates}


def convert_litellm(path: str | Path, *, effective_from: date | None = None) -> ImportResult:
    """Read a LiteLLM price file; raises ``ValueError`` (``FILE:LINE: message``) when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{path}: cannot read: {reason}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object mapping model names to prices")
    day = effective_from or date.today()
    result = ImportResult()
    seen: set[tuple[str, str]] = set()
    for name, spec in doc.items():
        if name == "sample_spec":  # LiteLLM's schema documentation, not a model
            continue
        if not isinstance(spec, dict):
            result.skipped["not an object"] += 1
            continue
        mode = spec.get("mode")
        if mode not in CHAT_MODES:
            result.skipped[f"mode {mode}"] += 1
            continue
        provider = LITELLM_PROVIDERS.get(str(spec.get("litellm_provider", "")))
        if provider is None:
            result.skipped[f"provider {spec.get('litellm_provider')}"] += 1
            continue
        model = name.rsplit("/", 1)[1] if "/" in name else name
        if (provider, model.lower()) in seen:
            result.skipped["duplicate name"] += 1
            continue
        rates, problem = _entry(spec)
        if rates is None:
            result.skipped[problem or "unusable"] += 1
            continue
        seen.add((provider, model.lower()))
        result.models.append({"provider": provider, "model": model, "effective_from": day, **rates})
    return result
