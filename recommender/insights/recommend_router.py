"""Router-threshold recommendations: is the smart router's confidence cut-off too high or too low?

Per feature and baseline model, routed calls' ratings are compared in
confidence bands of :data:`ROUTER_BAND` (>= 20 ratings a band) against the
baseline model's unrouted ratings (>= 20). Raise the threshold when the
lowest bands score more than :data:`ROUTER_RAISE_DROP` lower; lower it when the
lowest band is within the tolerance and >= :data:`ROUTER_MIN_UNROUTED`
baseline calls were not routed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from exporters.rollup.bands import CONFIDENCE_BAND

from ..params import Query
from ..store.reader import Rollup
from .call_facts import CallFacts, call_facts
from .recommend_quality import MIN_FEEDBACK, QUALITY_TOLERANCE

__all__ = ["ROUTER_BAND", "ROUTER_MIN_UNROUTED", "ROUTER_RAISE_DROP", "router_threshold"]

#: A router band scoring this much below its baseline is "clearly worse".
ROUTER_RAISE_DROP = 0.10
#: Width of the router-confidence bands feedback is compared in: the rollup's call_band_day bands.
ROUTER_BAND = CONFIDENCE_BAND
#: Unrouted baseline calls needed before lowering the threshold can save anything worth saying.
ROUTER_MIN_UNROUTED = 100


def router_threshold(
    rollup: Rollup, query: Query, per_month: float, *, facts: CallFacts | None = None
) -> list[dict[str, Any]]:
    """Compare routed calls' ratings by confidence band with the baseline model's own ratings on the feature.

    Clearly worse low bands mean the threshold is too low (quality is lost for a
    small saving); low bands as good as the baseline with many baseline calls
    still unrouted mean it can come down. Lowering by one band is assumed to
    route about as many calls as the lowest band holds now, each saving what
    that band's calls save.
    """
    facts = call_facts(rollup, query) if facts is None else facts
    routed_fb = facts.routed_feedback
    base_fb = facts.unrouted_feedback
    routed_calls = facts.routed_usage
    unrouted = facts.unrouted_calls
    bands: dict[tuple[str, str], dict[float, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: {"n": 0, "score_sum": 0.0, "calls": 0, "cost": 0.0, "baseline": 0.0})
    )
    for r in routed_fb:
        b = bands[(r["feature"], r["routed_from"])][r["band"]]
        b["n"] += r["n"]
        b["score_sum"] += r["n"] * r["score"]
    lowest: dict[tuple[str, str], float] = {}
    for r in routed_calls:
        key = (r["feature"], r["routed_from"])
        b = bands[key][r["band"]]
        b["calls"] += r["calls"]
        b["cost"] += r["cost"]
        b["baseline"] += r["baseline_cost"]
        lowest[key] = min(lowest.get(key, 1.0), r["router_confidence"])
    out = []
    for (feature, baseline), by_band in sorted(bands.items()):
        base = base_fb.get((feature, baseline))
        if base is None or base["n"] < MIN_FEEDBACK:
            continue
        rated = sorted((edge, b) for edge, b in by_band.items() if b["n"] >= MIN_FEEDBACK)
        if not rated:
            continue
        worse = []
        for edge, b in rated:
            if b["score_sum"] / b["n"] >= base["score"] - ROUTER_RAISE_DROP:
                break
            worse.append((edge, b))
        common = {
            "baseline_model": baseline,
            "baseline_feedback": {"count": base["n"], "mean_score": base["score"]},
            "bands": [
                {
                    "from": edge,
                    "to": round(edge + ROUTER_BAND, 6),
                    "routed_calls": b["calls"],
                    "feedback": b["n"],
                    "mean_score": b["score_sum"] / b["n"] if b["n"] else None,
                }
                for edge, b in sorted(by_band.items())
            ],
            "lowest_routed_confidence": lowest.get((feature, baseline)),
            "min_feedback_per_band": MIN_FEEDBACK,
        }
        if worse:
            new = round(worse[-1][0] + ROUTER_BAND, 6)
            n = sum(b["n"] for _, b in worse)
            delta = sum(b["score_sum"] for _, b in worse) / n - base["score"]
            calls = sum(b["calls"] for edge, b in by_band.items() if edge < new)
            extra = sum(b["baseline"] - b["cost"] for edge, b in by_band.items() if edge < new)
            out.append(
                {
                    "kind": "router_threshold",
                    "title": (
                        f"Raise the router threshold for '{feature}' to {new:.2f}: calls routed away from "
                        f"{baseline} below it are rated {delta:+.2f} lower"
                    ),
                    "target": f"feature:{feature}",
                    "savings": None,
                    "severity": abs(delta) * calls * per_month,
                    "impact": {
                        "quality_delta": delta,
                        "requests_per_month": calls * per_month,
                        "monthly_cost_increase_usd": extra * per_month,
                    },
                    "action": (
                        f"Raise the minimum router confidence for '{feature}' to {new:.2f} so those calls "
                        f"stay on {baseline}"
                    ),
                    "evidence": {
                        **common,
                        "direction": "raise",
                        "suggested_threshold": new,
                        "worse_by_more_than": ROUTER_RAISE_DROP,
                    },
                }
            )
            continue
        low_edge, low = min(by_band.items())
        remaining = unrouted.get((feature, baseline), 0)
        if (
            low["n"] < MIN_FEEDBACK
            or low["score_sum"] / low["n"] < base["score"] - QUALITY_TOLERANCE
            or remaining < ROUTER_MIN_UNROUTED
            or low_edge - ROUTER_BAND < 0
        ):
            continue
        moved = min(low["calls"], remaining)
        saved = moved * (low["baseline"] - low["cost"]) / low["calls"]
        if saved <= 0:
            continue
        new = round(low_edge - ROUTER_BAND, 6)
        delta = low["score_sum"] / low["n"] - base["score"]
        out.append(
            {
                "kind": "router_threshold",
                "title": (
                    f"Lower the router threshold for '{feature}' to {new:.2f}: its lowest band is rated "
                    f"{delta:+.2f} vs {baseline} and {remaining} calls still go to {baseline}"
                ),
                "target": f"feature:{feature}",
                "savings": saved * per_month,
                "impact": {
                    "monthly_usd": saved * per_month,
                    "requests_per_month": moved * per_month,
                    "quality_delta": delta,
                },
                "action": (
                    f"Lower the minimum router confidence for '{feature}' to {new:.2f} and check the new "
                    f"band's feedback after {MIN_FEEDBACK}+ ratings"
                ),
                "evidence": {
                    **common,
                    "direction": "lower",
                    "suggested_threshold": new,
                    "unrouted_baseline_calls": remaining,
                    "extra_routed_calls_estimate": moved,
                    "saving_per_routed_call_usd": (low["baseline"] - low["cost"]) / low["calls"],
                },
            }
        )
    return out
