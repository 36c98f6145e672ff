"""The overview dashboard."""

from __future__ import annotations

from .model import (
    Dashboard,
    Target,
    dashboard_link,
    stat,
    thresholds,
    timeseries,
)
from .series import (
    COST,
    COST_RAW,
    DURATION,
    LATENCY_B,
    REQ,
    SAVINGS,
    TPM,
    USD_PER_HOUR,
    M,
    error_ratio,
    per_hour,
    savings_over_range,
)


# --- 1. overview ------------------------------------------------------------------------
def overview() -> Dashboard:
    costs = dashboard_link("nexus-costs", "Costs & budgets")
    models = dashboard_link("nexus-models", "Models")
    router = dashboard_link("nexus-router", "Router")
    users = dashboard_link("nexus-users", "Users & features")
    count_sel = f"{DURATION}_count{{{TPM}}}"
    return Dashboard(
        "nexus-overview",
        "nexus-otel / Overview",
        "Requests, cost, router savings, response time, errors and active users of the AI features.",
        ["overview"],
        [
            stat(
                "Requests",
                "Model calls in the dashboard's time range (the duration histogram's count).",
                f"sum(increase({count_sel}[$__range]))",
                decimals=0,
                links=[models],
            ),
            stat(
                "Cost",
                "USD spent on model calls in the time range, priced once per token at record time.",
                f"sum(increase({COST_RAW}{{{TPM}}}[$__range]))",
                "currencyUSD",
                decimals=2,
                links=[costs],
            ),
            stat(
                "Router savings",
                "What routed calls would have cost on their baseline model minus what they cost, "
                "in the time range. Negative when routing made calls dearer.",
                savings_over_range(TPM),
                "currencyUSD",
                decimals=2,
                links=[router],
            ),
            stat(
                "Average response time",
                "Mean duration of model calls (successful and failed) in the time range.",
                f"""
                sum(increase({DURATION}_sum{{{TPM}}}[$__range]))
                / sum(increase({count_sel}[$__range]))
                """,
                "s",
                decimals=2,
            ),
            stat(
                "p95 response time",
                "95th percentile duration of successful calls in the time range (from the histogram).",
                f"""
                histogram_quantile(0.95,
                  sum by (le) (increase({DURATION}_bucket{{{TPM}, nexus_outcome="success"}}[$__range])))
                """,
                "s",
                decimals=2,
            ),
            stat(
                "Error rate",
                "Share of calls that failed in the time range (0 when none failed).",
                f"""
                (
                    sum(increase({DURATION}_count{{{TPM}, nexus_outcome="error"}}[$__range]))
                  or
                    0 * sum(increase({count_sel}[$__range]))
                )
                / sum(increase({count_sel}[$__range]))
                """,
                "percentunit",
                decimals=2,
                steps=thresholds((None, "green"), (0.02, "yellow"), (0.05, "red")),
            ),
            stat(
                "Active users",
                "Distinct users with a model call or product event in the trailing 1, 7 and 30 days, "
                "counted by the collector from its rollup (all teams: user ids are never metric labels).",
                "max by (window) (nexus_active_users)",
                legend="{{window}}",
                w=8,
                links=[users],
            ),
            stat(
                "Spend per hour now",
                "Current spend rate (5-minute rate of the cost counter) in USD per hour.",
                per_hour(f"sum({COST}{{{TPM}}})"),
                USD_PER_HOUR,
                decimals=2,
                links=[costs],
            ),
            stat(
                "Requests per second now",
                "Current request rate (5-minute rate).",
                f"sum({REQ}{{{TPM}}})",
                "reqps",
                decimals=2,
            ),
            stat(
                "Router savings per hour now",
                "Current router savings rate in USD per hour.",
                per_hour(f"sum({SAVINGS}{{{TPM}}})"),
                USD_PER_HOUR,
                decimals=2,
                links=[router],
                w=8,
            ),
            timeseries(
                "Cost per hour by team",
                "Spend rate per team (USD per hour, 5-minute rate).",
                Target(per_hour(f"sum by (nexus_team) ({COST}{{{TPM}}})"), "{{nexus_team}}"),
                unit=USD_PER_HOUR,
                custom={"stacking": {"group": "A", "mode": "normal"}},
            ),
            timeseries(
                "Requests per second by model",
                "Request rate per requested model (5-minute rate).",
                Target(f"sum by (gen_ai_request_model) ({REQ}{{{TPM}}})", "{{gen_ai_request_model}}"),
                unit="reqps",
                custom={"stacking": {"group": "A", "mode": "normal"}},
            ),
            timeseries(
                "Response time (selected models)",
                "Median and 95th percentile duration of successful calls across the selected models.",
                Target(f"histogram_quantile(0.5, sum by (le) ({LATENCY_B}{{{M}}}))", "p50"),
                Target(f"histogram_quantile(0.95, sum by (le) ({LATENCY_B}{{{M}}}))", "p95"),
                unit="s",
            ),
            timeseries(
                "Error rate by team",
                "Share of failed calls per team (5-minute rate).",
                Target(error_ratio("nexus_team", TPM), "{{nexus_team}}"),
                unit="percentunit",
                min=0,
            ),
        ],
    )
