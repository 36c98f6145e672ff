"""The users dashboard."""

from __future__ import annotations

from .model import (
    Dashboard,
    Panel,
    Target,
    stat,
    thresholds,
    timeseries,
)
from .series import (
    REQ,
    TP,
    TPM,
)


# --- 5. users & features --------------------------------------------------------------
def users() -> Dashboard:
    return Dashboard(
        "nexus-users",
        "nexus-otel / Users & features",
        "Who uses the AI features: active users, stickiness, retention and churn (computed by the "
        "recommender from the rollup), feature adoption and usage.",
        ["users", "features"],
        [
            stat(
                "Active users (collector)",
                "Distinct users in the trailing 1, 7 and 30 days, counted by the collector from the rollup.",
                "max by (window) (nexus_active_users)",
                legend="{{window}}",
                w=8,
            ),
            stat(
                "DAU / WAU / MAU",
                "Daily, weekly and monthly active users from the recommender's insights.",
                "max by (window) (nexus_insights_active_users)",
                legend="{{window}}",
                w=8,
            ),
            stat(
                "Stickiness (DAU / MAU)",
                "Share of the month's users who were active today.",
                "max(nexus_insights_stickiness_ratio)",
                "percentunit",
                decimals=1,
                w=4,
            ),
            stat(
                "Churned users",
                "Users active before but not any more, as the recommender defines churn.",
                "max(nexus_insights_churned_users)",
                decimals=0,
                w=4,
            ),
            Panel(
                "bargauge",
                "Retention",
                "Share of a cohort still active 1, 2 and 4 weeks after first use (recommender).",
                [Target("max by (weeks) (nexus_insights_retention_ratio)", "{{weeks}} weeks", instant=True)],
                "percentunit",
                w=8,
                min=0,
                max=1,
                steps=thresholds((None, "red"), (0.2, "yellow"), (0.4, "green")),
            ),
            Panel(
                "bargauge",
                "Feature adoption",
                "Share of active users who use each feature (recommender).",
                [
                    Target(
                        "max by (feature) (nexus_insights_feature_adoption_ratio)",
                        "{{feature}}",
                        instant=True,
                    )
                ],
                "percentunit",
                w=8,
                min=0,
                max=1,
            ),
            Panel(
                "bargauge",
                "Feature uses in range",
                "Uses of each product feature in the time range (track_feature).",
                [
                    Target(
                        f"sum by (nexus_feature) (increase(nexus_feature_usage_total{{{TP}}}[$__range]))",
                        "{{nexus_feature}}",
                        instant=True,
                    )
                ],
                decimals=0,
                w=8,
            ),
            timeseries(
                "Feature uses per second",
                "Product feature usage rate per feature.",
                Target(
                    f"sum by (nexus_feature) (rate(nexus_feature_usage_total{{{TP}}}[$__rate_interval]))",
                    "{{nexus_feature}}",
                ),
                unit="ops",
                w=8,
            ),
            timeseries(
                "Model calls per second by feature",
                "Request rate per feature (5-minute rate).",
                Target(f"sum by (nexus_feature) ({REQ}{{{TPM}}})", "{{nexus_feature}}"),
                unit="reqps",
                w=8,
            ),
            timeseries(
                "Sessions started per minute by feature",
                "User sessions started per minute, per feature.",
                Target(
                    f"""
                    60 * sum by (nexus_feature) (
                      rate(nexus_sessions_total{{{TP}, nexus_session_state="started"}}[$__rate_interval]))
                    """,
                    "{{nexus_feature}}",
                ),
                unit="short",
                w=8,
            ),
            timeseries(
                "Active users over time",
                "The collector's trailing-window active users and the recommender's DAU/WAU/MAU.",
                Target("max by (window) (nexus_active_users)", "collector {{window}}"),
                Target("max by (window) (nexus_insights_active_users)", "recommender {{window}}"),
                w=24,
            ),
        ],
        time_from="now-7d",
    )
