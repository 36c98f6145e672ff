"""Live totals for the demo's status line, read from the recorder's own aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from .. import semconv as sc
from ..aggregate import AggregatingMetrics

__all__ = ["Summary", "summarise"]


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    router_savings_usd: float
    pricing_misses: int

    def line(self) -> str:
        error_pct = 100 * self.errors / self.requests if self.requests else 0.0
        return (
            f"requests {self.requests:,}  errors {error_pct:.1f}%  "
            f"tokens in/out {self.input_tokens:,}/{self.output_tokens:,}  "
            f"cost ${self.cost_usd:,.4f}  router savings ${self.router_savings_usd:,.4f}  "
            f"unpriced calls {self.pricing_misses:,}"
        )


def summarise(metrics: AggregatingMetrics) -> Summary:
    snap = metrics.snapshot()
    durations = snap.histograms.get(sc.OPERATION_DURATION.name, {})
    requests = sum(h.count for h in durations.values())
    errors = sum(h.count for key, h in durations.items() if (sc.OUTCOME, sc.OUTCOME_ERROR) in key)
    tokens = snap.histograms.get(sc.TOKEN_USAGE.name, {})
    input_tokens = sum(h.sum for key, h in tokens.items() if (sc.TOKEN_TYPE, "input") in key)
    output_tokens = sum(h.sum for key, h in tokens.items() if (sc.TOKEN_TYPE, "output") in key)
    cost = snap.counters.get(sc.COST.name, {})
    routed_cost = sum(v for key, v in cost.items() if (sc.ROUTED, "true") in key)
    baseline = sum(snap.counters.get(sc.ROUTER_BASELINE_COST.name, {}).values())
    return Summary(
        requests=requests,
        errors=errors,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cost_usd=sum(cost.values()),
        router_savings_usd=baseline - routed_cost,
        pricing_misses=int(sum(snap.counters.get(sc.PRICING_MISSES.name, {}).values())),
    )
