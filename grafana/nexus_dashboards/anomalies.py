"""The anomalies dashboard."""

from __future__ import annotations

from .model import (
    ZSCORE,
    Dashboard,
    Panel,
    Target,
    stat,
    table,
    thresholds,
    timeseries,
    value_columns,
)
from .series import (
    ERR_RATIO_MODEL,
    LATENCY_Q,
    TP,
    USD_PER_HOUR,
    M,
    per_hour,
)


# --- 6. anomalies & recommendations --------------------------------------------------
def anomalies() -> Dashboard:
    def zscore(title: str, series: str, selector: str, legend: str, what: str) -> Panel:
        return timeseries(
            f"{title} z-score",
            f"How many spreads {what} is from its usual level (rules/anomalies.yml); the alert rules "
            "also require a large relative change. Red beyond ±3.",
            Target(f"{series}_zscore{{{selector}}}", legend),
            unit="short",
            w=8,
            steps=ZSCORE,
            custom={"thresholdsStyle": {"mode": "line+area"}},
        )

    tp_legend = "{{nexus_team}} / {{nexus_project}}"
    cost = "team_project:nexus_cost_usd:rate5m"
    alert_labels = (
        "alertname, alertstate, severity, category, nexus_team, nexus_project, gen_ai_request_model"
    )
    return Dashboard(
        "nexus-anomalies",
        "nexus-otel / Anomalies & recommendations",
        "Alerts that fire, the z-score bands behind the anomaly alerts, the recommender's learned "
        "anomaly scores, and its top recommendations with their estimated monthly savings.",
        ["anomalies", "recommendations"],
        [
            stat(
                "Firing alerts",
                "Alerts firing now (ALERTS series). 0 means none fires: count() of no series is "
                "reported as 0.",
                'count(ALERTS{alertstate="firing"}) or vector(0)',
                decimals=0,
                steps=thresholds((None, "green"), (1, "red")),
                w=6,
            ),
            stat(
                "Active learned anomalies",
                "Anomalies the recommender's detectors report now, per detector.",
                "sum by (detector) (nexus_anomalies_active)",
                legend="{{detector}}",
                decimals=0,
                steps=thresholds((None, "green"), (1, "orange")),
                w=9,
            ),
            stat(
                "Estimated monthly savings",
                "Sum of the recommender's estimated monthly savings over its recommendations.",
                "max(nexus_recommendations_monthly_savings_usd)",
                "currencyUSD",
                decimals=2,
                w=9,
            ),
            table(
                "Alerts firing and pending",
                "Every alert Prometheus holds now; pending ones wait for their 'for' duration.",
                Target(f"max by ({alert_labels}) (ALERTS)"),
                rename={
                    "alertname": "Alert",
                    "alertstate": "State",
                    "severity": "Severity",
                    "category": "Category",
                    "nexus_team": "Team",
                    "nexus_project": "Project",
                    "gen_ai_request_model": "Model",
                },
                w=12,
            ),
            table(
                "Top recommendations",
                "The recommender's ten best recommendations by estimated monthly savings.",
                Target("max by (rank, kind, target) (nexus_recommendation_monthly_savings_usd)"),
                rename={"rank": "Rank", "kind": "Kind", "target": "Target", "Value": "USD per month"},
                w=12,
                overrides=value_columns({"USD per month": "currencyUSD"}),
                options={"sortBy": [{"desc": True, "displayName": "USD per month"}]},
            ),
            zscore("Cost", cost, TP, tp_legend, "the spend rate"),
            zscore(
                "Request rate",
                "team_project:gen_ai_client_operations:rate5m",
                TP,
                tp_legend,
                "the request rate",
            ),
            zscore(
                "Token rate",
                "team_project:gen_ai_client_token_usage_sum:rate5m",
                TP,
                tp_legend,
                "the token rate",
            ),
            zscore(
                "Error ratio",
                ERR_RATIO_MODEL,
                M,
                "{{gen_ai_request_model}}",
                "the error ratio (vs the median of the previous day)",
            ),
            zscore(
                "p95 latency",
                LATENCY_Q,
                M,
                "{{gen_ai_request_model}}",
                "the p95 duration (vs the median of the previous day)",
            ),
            timeseries(
                "Cost vs usual band",
                "Spend rate (USD/h) with the prediction for this hour and the band of ±3 spreads.",
                Target(per_hour(f"{cost}{{{TP}}}"), f"{tp_legend} actual"),
                Target(per_hour(f"{cost}_prediction{{{TP}}}"), f"{tp_legend} usual"),
                Target(
                    per_hour(f"({cost}_prediction{{{TP}}} + 3 * {cost}_spread{{{TP}}})"),
                    f"{tp_legend} upper band",
                ),
                unit=USD_PER_HOUR,
                w=8,
            ),
            timeseries(
                "Learned anomaly scores",
                "The recommender's pyod detectors' scores (0..1) per detector and scope; "
                "NexusLearnedAnomaly fires at 0.9 for 10 minutes.",
                Target("max by (detector, scope) (nexus_anomaly_score)", "{{detector}} {{scope}}"),
                unit="percentunit",
                min=0,
                max=1,
                steps=thresholds((None, "green"), (0.9, "red")),
                custom={"thresholdsStyle": {"mode": "line"}},
                w=16,
            ),
            Panel(
                "bargauge",
                "Recommendations by estimated monthly savings",
                "Estimated monthly savings of each of the top recommendations.",
                [
                    Target(
                        "max by (rank, kind, target) (nexus_recommendation_monthly_savings_usd)",
                        "#{{rank}} {{kind}}: {{target}}",
                        instant=True,
                    )
                ],
                "currencyUSD",
                decimals=2,
                w=8,
            ),
        ],
        time_from="now-24h",
    )
