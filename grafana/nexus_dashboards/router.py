"""The router dashboard."""

from __future__ import annotations

from .model import (
    Dashboard,
    Panel,
    Target,
    stat,
    timeseries,
)
from .series import (
    BASELINE,
    BASELINE_RAW,
    COST_RAW,
    DECISIONS,
    REQ,
    SAVINGS,
    TPM,
    USD_PER_HOUR,
    per_hour,
    savings_over_range,
)


# --- 4. router ------------------------------------------------------------------------
def router() -> Dashboard:
    call = "gen_ai_request_model, gen_ai_provider_name, nexus_feature, nexus_team, nexus_project"
    pair_savings = f"""
        sum by (nexus_router_baseline_model, gen_ai_request_model) (
            sum by (nexus_router_baseline_model, {call}) (increase({BASELINE_RAW}{{{TPM}}}[$__range]))
          - on ({call}) group_left ()
            sum by ({call}) (increase({COST_RAW}{{{TPM}, nexus_routed="true"}}[$__range]))
        )
    """
    confidence = "nexus_router_confidence"
    return Dashboard(
        "nexus-router",
        "nexus-otel / Router",
        "The smart router: how many calls it moves to a cheaper model, what that saves (over time and by "
        "baseline → actual model) and how confident it is.",
        ["router"],
        [
            stat(
                "Routed share",
                "Share of calls the router moved off their baseline model (current 5-minute rates); "
                "0 when the selection has calls but none was routed.",
                f"""
                (
                    sum({DECISIONS}{{{TPM}, nexus_routed="true"}})
                  or
                    0 * sum({REQ}{{{TPM}}})
                )
                / sum({REQ}{{{TPM}}})
                """,
                "percentunit",
                decimals=1,
                w=6,
            ),
            stat(
                "Savings in range",
                "Baseline cost minus actual cost of routed calls in the time range (no data when the "
                "selection has no routed calls).",
                savings_over_range(TPM),
                "currencyUSD",
                decimals=2,
                w=6,
            ),
            stat(
                "Savings per hour now",
                "Current savings rate, USD per hour.",
                per_hour(f"sum({SAVINGS}{{{TPM}}})"),
                USD_PER_HOUR,
                decimals=3,
                w=6,
            ),
            stat(
                "Mean confidence",
                "Mean confidence the router reported for its decisions in the time range.",
                f"""
                sum(increase({confidence}_sum{{{TPM}}}[$__range]))
                / sum(increase({confidence}_count{{{TPM}}}[$__range]))
                """,
                "percentunit",
                decimals=1,
                w=6,
            ),
            timeseries(
                "Routed share over time",
                "Share of calls routed away from their baseline model, per team (0 for a team without "
                "routed calls).",
                Target(
                    f"""
                    (
                        sum by (nexus_team) ({DECISIONS}{{{TPM}, nexus_routed="true"}})
                      or
                        0 * sum by (nexus_team) ({REQ}{{{TPM}}})
                    )
                    / sum by (nexus_team) ({REQ}{{{TPM}}})
                    """,
                    "{{nexus_team}}",
                ),
                unit="percentunit",
                min=0,
            ),
            timeseries(
                "Savings per hour by actual model",
                "Router savings rate per model the calls were routed to (USD per hour).",
                Target(
                    per_hour(f"sum by (gen_ai_request_model) ({SAVINGS}{{{TPM}}})"),
                    "{{gen_ai_request_model}}",
                ),
                unit=USD_PER_HOUR,
                custom={"stacking": {"group": "A", "mode": "normal"}},
            ),
            timeseries(
                "Routed calls: baseline cost vs actual cost",
                "What the routed calls would have cost on their baseline model and what they cost (USD/h).",
                Target(per_hour(f"sum({BASELINE}{{{TPM}}})"), "on baseline model"),
                Target(per_hour(f"sum({BASELINE}{{{TPM}}}) - sum({SAVINGS}{{{TPM}}})"), "actual"),
                unit=USD_PER_HOUR,
            ),
            Panel(
                "bargauge",
                "Savings by baseline → actual model, in range",
                "Savings per routing pair in the time range. Actual cost is matched to its baseline by "
                "feature, team, project and model, so it is exact as long as one feature routes from one "
                "baseline model.",
                [
                    Target(
                        pair_savings,
                        "{{nexus_router_baseline_model}} → {{gen_ai_request_model}}",
                        instant=True,
                    )
                ],
                "currencyUSD",
                decimals=2,
            ),
            timeseries(
                "Routing decisions per second by pair",
                "Routed calls per second, by baseline → actual model.",
                Target(
                    f"""
                    sum by (nexus_router_baseline_model, gen_ai_request_model) (
                      {DECISIONS}{{{TPM}, nexus_routed="true"}})
                    """,
                    "{{nexus_router_baseline_model}} → {{gen_ai_request_model}}",
                ),
                unit="reqps",
            ),
            Panel(
                "bargauge",
                "Confidence distribution, in range",
                "Routing decisions per confidence bucket in the time range (upper bucket bounds).",
                [
                    Target(
                        f"sum by (le) (increase({confidence}_bucket{{{TPM}}}[$__range]))",
                        "{{le}}",
                        instant=True,
                        fmt="heatmap",
                    )
                ],
                "short",
                decimals=0,
                options={"orientation": "vertical", "displayMode": "basic"},
            ),
            timeseries(
                "Confidence quantiles",
                "10th percentile and median router confidence (5-minute windows).",
                Target(
                    f"histogram_quantile(0.1, sum by (le) (rate({confidence}_bucket{{{TPM}}}[5m])))", "p10"
                ),
                Target(
                    f"histogram_quantile(0.5, sum by (le) (rate({confidence}_bucket{{{TPM}}}[5m])))", "p50"
                ),
                unit="percentunit",
                min=0,
                max=1,
                w=24,
            ),
        ],
    )
