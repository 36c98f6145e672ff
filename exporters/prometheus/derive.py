"""Cost for senders that report GenAI token usage but no cost (bring-your-own instrumentation).

The official OpenTelemetry GenAI instrumentations emit ``gen_ai.client.token.usage``
and nothing about money. For such a sender the collector prices each increment
of that histogram with the same table nexus-otel's library uses and adds it to
``nexus_cost_usd_total``; an unknown model counts ``nexus_pricing_misses_total``
instead of a guessed cost. Senders that report ``nexus.cost.usd`` themselves, and
nexus-otel's own scope, are never priced twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nexus_otel import semconv
from nexus_otel.pricing import PriceTable, get_default_table
from nexus_otel.pricing.cost import usd

from .store import Family, Scope, Sender, SeriesStore

__all__ = ["LEGACY_PROVIDER_KEY", "CostDeriver", "normalise_genai_attributes"]

#: The attribute older GenAI conventions (and instrumentations) use for the provider.
LEGACY_PROVIDER_KEY = "gen_ai.system"
_COST_KEYS = tuple(k for k in semconv.COST.attributes if k not in (semconv.COST_TYPE,))
_MISS_KEYS = semconv.PRICING_MISSES.attributes
_CALL_KEYS = tuple(k for k in semconv.TOKEN_USAGE.attributes if k != semconv.TOKEN_TYPE)


def normalise_genai_attributes(attrs: dict[str, str]) -> dict[str, str]:
    """Map ``gen_ai.system`` to ``gen_ai.provider.name`` so both conventions land in one series."""
    legacy = attrs.pop(LEGACY_PROVIDER_KEY, None)
    if legacy is not None and semconv.PROVIDER not in attrs:
        attrs[semconv.PROVIDER] = legacy
    return attrs


class CostDeriver:
    """Prices token-usage increments of senders without cost. Call under the store's lock."""

    def __init__(self, *, table: Callable[[], PriceTable] = get_default_table) -> None:
        self._table = table
        self._cost_senders: set[tuple[str, str]] = set()
        # mean input tokens per call of the latest input increment, per call series: the
        # long-context tier of an output increment is chosen by the input size of its calls
        self._input_per_call: dict[tuple[object, ...], int] = {}

    def note_metric_names(self, sender: Sender, names: set[str]) -> None:
        if semconv.COST.name in names:
            self._cost_senders.add(sender.key)

    def applies(self, sender: Sender, scope: Scope) -> bool:
        return scope.name != semconv.INSTRUMENTATION_SCOPE and sender.key not in self._cost_senders

    def forget(self, sender_key: tuple[str, str]) -> None:
        self._cost_senders.discard(sender_key)
        self._input_per_call = {k: v for k, v in self._input_per_call.items() if k[0] != sender_key}

    def on_token_usage(
        self,
        store: SeriesStore,
        sender: Sender,
        scope: Scope,
        attrs: Mapping[str, str],
        *,
        tokens: float,
        calls: int,
    ) -> None:
        token_type = attrs.get(semconv.TOKEN_TYPE)
        if token_type not in ("input", "output") or calls <= 0:
            return
        model = attrs.get(semconv.RESPONSE_MODEL) or attrs.get(semconv.REQUEST_MODEL) or ""
        price = self._table().lookup(provider=attrs.get(semconv.PROVIDER), model=model) if model else None
        if price is None:
            if token_type == "input":  # one miss per call, not one per token type
                family = _family(store, semconv.PRICING_MISSES)
                miss_attrs = {k: attrs[k] for k in _MISS_KEYS if k in attrs}
                store.add_number(
                    sender, scope, family, miss_attrs, value=float(calls), start_ns=0, cumulative=False
                )
            return
        call_key = (sender.key, scope, tuple(attrs.get(k, "") for k in _CALL_KEYS))
        count = max(round(tokens), 0)
        if token_type == "input":
            per_call = count // calls
            self._input_per_call[call_key] = per_call
            rate = price.rates_for(per_call).input
        else:
            rate = price.rates_for(self._input_per_call.get(call_key, 0)).output
        cost_attrs = {k: attrs[k] for k in _COST_KEYS if k in attrs}
        cost_attrs[semconv.COST_TYPE] = token_type
        family = _family(store, semconv.COST)
        store.add_number(
            sender, scope, family, cost_attrs, value=float(usd(count, rate)), start_ns=0, cumulative=False
        )


def _family(store: SeriesStore, spec: semconv.MetricSpec) -> Family:
    return store.family(name=spec.name, unit=spec.unit, kind=spec.kind, description=spec.description)
