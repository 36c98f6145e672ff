"""Convert LiteLLM's ``model_prices_and_context_window.json`` to nexus-otel's price YAML.

LiteLLM keeps the most widely maintained machine-readable price list; its
values are USD per token. The conversion reads them as ``Decimal`` (never
float), multiplies by one million, maps LiteLLM provider names to
OpenTelemetry ``gen_ai.provider.name`` values and keeps chat-style models only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PROVIDER_NAMES", "ImportResult", "convert_litellm"]

#: LiteLLM ``litellm_provider`` → OpenTelemetry ``gen_ai.provider.name``.
PROVIDER_NAMES = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex_ai-language-models": "gcp.vertex_ai",
    "vertex_ai-anthropic_models": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "groq": "groq",
    "xai": "x_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
}
CHAT_MODES = {"chat", "completion", "responses"}
_FIELDS = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cache_read": "cache_read_input_token_cost",
    "cache_write_5m": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "reasoning": "output_cost_per_reasoning_token",
}
_TIER_FIELDS = {
    "input": "input_cost_per_token_above_200k_tokens",
    "output": "output_cost_per_token_above_200k_tokens",
    "cache_read": "cache_read_input_token_cost_above_200k_tokens",
    "cache_write_5m": "cache_creation_input_token_cost_above_200k_tokens",
}
_MILLION = Decimal(1_000_000)


@dataclass
class ImportResult:
    models: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def to_yaml(self) -> str:
        header = (
            "# Converted from LiteLLM's model_prices_and_context_window.json by `nexus-otel prices import`.\n"
            "# USD per 1M tokens.\n"
        )
        return header + yaml.safe_dump({"version": 1, "models": self.models}, sort_keys=False, width=120)


def _per_million(value: Any) -> str:
    return format((Decimal(str(value)) * _MILLION).normalize(), "f")


def convert_litellm(path: str | Path, *, effective_from: date | None = None) -> ImportResult:
    """Read a LiteLLM price file; raises ``ValueError`` when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object mapping model names to prices")
    day = (effective_from or date.today()).isoformat()
    result = ImportResult()
    seen: set[tuple[str, str]] = set()
    for name, spec in doc.items():
        if name == "sample_spec" or not isinstance(spec, dict):
            continue
        if spec.get("mode", "chat") not in CHAT_MODES:
            result.skip(f"mode {spec.get('mode')}")
            continue
        provider = PROVIDER_NAMES.get(str(spec.get("litellm_provider", "")))
        if provider is None:
            result.skip(f"provider {spec.get('litellm_provider')}")
            continue
        if spec.get(_FIELDS["input"]) is None or spec.get(_FIELDS["output"]) is None:
            result.skip("no input/output price")
            continue
        model = name.split("/", 1)[1] if "/" in name else name
        if (provider, model) in seen:
            result.skip("duplicate")
            continue
        seen.add((provider, model))
        entry: dict[str, Any] = {"provider": provider, "model": model, "effective_from": day}
        for ours, theirs in _FIELDS.items():
            if spec.get(theirs) is not None:
                entry[ours] = _per_million(spec[theirs])
        tier = {
            ours: _per_million(spec[theirs])
            for ours, theirs in _TIER_FIELDS.items()
            if spec.get(theirs) is not None
        }
        if "input" in tier and "output" in tier:
            entry["tiers"] = [{"above_input_tokens": 200_000, **tier}]
        result.models.append(entry)
    return result
