"""The costs dashboard."""

from __future__ import annotations

from .model import (
    BUDGET,
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
    COST,
    COST_1D,
    COST_TYPE,
    REQ,
    TPM,
    USD_PER_HOUR,
    M,
    cache_savings_rate,
    clean_expr,
    per_hour,
)


# --- 2. costs & budgets -----------------------------------------------------------------
def costs() -> Dashboard:
    def cost_by(label: str, title: str) -> Panel:
        return timeseries(
            f"Cost per hour by {title}",
            f"Spend rate per {title} in USD per hour (5-minute rate).",
            Target(per_hour(f"sum by ({label}) ({COST}{{{TPM}}})"), f"{{{{{label}}}}}"),
            unit=USD_PER_HOUR,
            w=8,
            custom={"stacking": {"group": "A", "mode": "normal"}},
        )

    team_budget = 'budget_scope="team", nexus_team=~"$team"'
    budget_rename = {
        "nexus_team": "Team",
        "nexus_project": "Project",
        "gen_ai_request_model": "Model",
        "budget_scope": "Scope",
        "Value #A": "Budget",
        "Value #B": "Month to date",
        "Value #C": "Spent",
        "Value #D": "Month-end forecast",
        "Value #E": "Forecast / budget",
    }
    budget_labels = "nexus_team, nexus_project, gen_ai_request_model, budget_scope"
    budget_sel = 'nexus_team=~"$team|all", nexus_project=~"$project|all", gen_ai_request_model=~"$model|all"'
    return Dashboard(
        "nexus-costs",
        "nexus-otel / Costs & budgets",
        "Where the money goes (team, project, model, provider, feature, cost type), monthly budgets "
        "with their 50/75/90% thresholds and month-end forecast, cost per request and cache savings.",
        ["costs", "budgets"],
        [
            stat(
                "Spend, last 24 h",
                "USD spent in the trailing 24 hours (recording rule increase1d).",
                f"sum({COST_1D}{{{TPM}}})",
                "currencyUSD",
                decimals=2,
            ),
            stat(
                "Month to date (team budgets)",
                "Spend since the 1st of the month in the budget timezone, from the collector's rollup, "
                "summed over the selected teams' budgets.",
                f"sum(nexus_spend_month_to_date_usd{{{team_budget}}})",
                "currencyUSD",
                decimals=2,
            ),
            stat(
                "Monthly budget (teams)",
                "Sum of the selected teams' monthly budgets (budgets.yaml).",
                f"sum(nexus_budget_usd{{{team_budget}}})",
                "currencyUSD",
                decimals=2,
            ),
            stat(
                "Month-end forecast (teams)",
                "Month-to-date spend plus the last day's burn rate for the rest of the month.",
                f"sum(budget:nexus_spend_usd:forecast_month_end{{{team_budget}}})",
                "currencyUSD",
                decimals=2,
            ),
            stat(
                "Cost per 1k requests",
                "USD per 1000 model calls at the current rates.",
                f"1000 * sum({COST}{{{TPM}}}) / sum({REQ}{{{TPM}}})",
                "currencyUSD",
                decimals=3,
            ),
            stat(
                "Cache savings per hour",
                "USD per hour that cache reads save: cached input tokens priced at the model's uncached "
                "input price minus their cache-read price (prices derived from the recorded cost and "
                "token rates of each model).",
                per_hour(f"sum({clean_expr(cache_savings_rate())})"),
                USD_PER_HOUR,
                decimals=3,
            ),
            Panel(
                "bargauge",
                "Month to date vs budget, teams",
                "Share of each team's monthly budget spent so far. Thresholds at 50%, 75% and 90% are the "
                "NexusBudgetBurn alert's info, warning and critical levels.",
                [
                    Target(
                        f"budget:nexus_spend_month_to_date_usd:ratio{{{team_budget}}}",
                        "{{nexus_team}}",
                        instant=True,
                    )
                ],
                "percentunit",
                w=8,
                min=0,
                max=1,
                steps=BUDGET,
            ),
            Panel(
                "bargauge",
                "Month to date vs budget, projects",
                "Share of each project's monthly budget spent so far (50/75/90% thresholds).",
                [
                    Target(
                        'budget:nexus_spend_month_to_date_usd:ratio{budget_scope="project", '
                        'nexus_team=~"$team", nexus_project=~"$project"}',
                        "{{nexus_team}} / {{nexus_project}}",
                        instant=True,
                    )
                ],
                "percentunit",
                w=8,
                min=0,
                max=1,
                steps=BUDGET,
            ),
            Panel(
                "bargauge",
                "Month-end forecast vs budget, teams",
                "Projected month-end spend as a share of each team's budget; over 100% means the month "
                "ends over budget at the last day's burn rate (NexusBudgetForecastOverrun).",
                [
                    Target(
                        f"budget:nexus_spend_usd:forecast_ratio{{{team_budget}}}",
                        "{{nexus_team}}",
                        instant=True,
                    )
                ],
                "percentunit",
                w=8,
                min=0,
                max=1.5,
                steps=thresholds((None, "green"), (0.9, "orange"), (1, "red")),
            ),
            table(
                "Budgets",
                "Every budget of the selection: monthly limit, month-to-date spend and share, and the "
                "month-end forecast. Unscoped labels read 'all'.",
                Target(f"max by ({budget_labels}) (nexus_budget_usd{{{budget_sel}}})"),
                Target(f"max by ({budget_labels}) (nexus_spend_month_to_date_usd{{{budget_sel}}})"),
                Target(
                    f"max by ({budget_labels}) (budget:nexus_spend_month_to_date_usd:ratio{{{budget_sel}}})"
                ),
                Target(
                    f"max by ({budget_labels}) (budget:nexus_spend_usd:forecast_month_end{{{budget_sel}}})"
                ),
                Target(f"max by ({budget_labels}) (budget:nexus_spend_usd:forecast_ratio{{{budget_sel}}})"),
                rename=budget_rename,
                w=24,
                overrides=value_columns(
                    {
                        "Budget": "currencyUSD",
                        "Month to date": "currencyUSD",
                        "Spent": "percentunit",
                        "Month-end forecast": "currencyUSD",
                        "Forecast / budget": "percentunit",
                    }
                ),
            ),
            cost_by("nexus_team", "team"),
            cost_by("nexus_project", "project"),
            cost_by("nexus_feature", "feature"),
            cost_by("gen_ai_request_model", "model"),
            cost_by("gen_ai_provider_name", "provider"),
            timeseries(
                "Cost per hour by cost type",
                "Spend rate by what was billed: uncached input, cache reads, cache writes, output, "
                "reasoning (per model; not split by team).",
                Target(per_hour(f"sum by (nexus_cost_type) ({COST_TYPE}{{{M}}})"), "{{nexus_cost_type}}"),
                unit=USD_PER_HOUR,
                w=8,
                custom={"stacking": {"group": "A", "mode": "normal"}},
            ),
            timeseries(
                "Cost per 1k requests by model",
                "USD per 1000 calls of each model (5-minute rates).",
                Target(
                    f"""
                    1000 * sum by (gen_ai_request_model) ({COST}{{{TPM}}})
                    / sum by (gen_ai_request_model) ({REQ}{{{TPM}}})
                    """,
                    "{{gen_ai_request_model}}",
                ),
                unit="currencyUSD",
                w=8,
            ),
            timeseries(
                "Cache savings per hour by model",
                "USD per hour saved by provider cache reads, per model (see the stat above for the method).",
                Target(
                    per_hour(f"sum by (gen_ai_request_model) ({clean_expr(cache_savings_rate())})"),
                    "{{gen_ai_request_model}}",
                ),
                unit=USD_PER_HOUR,
                w=8,
            ),
            timeseries(
                "Month-end forecast, teams",
                "Projected month-end spend per team against its budget.",
                Target(
                    f"budget:nexus_spend_usd:forecast_month_end{{{team_budget}}}", "{{nexus_team}} forecast"
                ),
                Target(f"nexus_budget_usd{{{team_budget}}}", "{{nexus_team}} budget"),
                unit="currencyUSD",
                w=8,
            ),
            table(
                "Top spenders, last 24 h",
                "The ten team / project / model combinations that spent most in the trailing 24 hours.",
                Target(
                    f"""
                    topk(10,
                      sum by (nexus_team, nexus_project, gen_ai_request_model) ({COST_1D}{{{TPM}}}))
                    """
                ),
                rename={
                    "nexus_team": "Team",
                    "nexus_project": "Project",
                    "gen_ai_request_model": "Model",
                    "Value": "USD, 24 h",
                },
                w=12,
                overrides=value_columns({"USD, 24 h": "currencyUSD"}),
                options={"sortBy": [{"desc": True, "displayName": "USD, 24 h"}]},
            ),
            table(
                "Top features by spend rate",
                "The ten features with the highest current spend, in USD per hour.",
                Target(per_hour(f"topk(10, sum by (nexus_team, nexus_feature) ({COST}{{{TPM}}}))")),
                rename={"nexus_team": "Team", "nexus_feature": "Feature", "Value": "USD per hour"},
                w=12,
                overrides=value_columns({"USD per hour": USD_PER_HOUR}),
                options={"sortBy": [{"desc": True, "displayName": "USD per hour"}]},
            ),
        ],
        time_from="now-24h",
    )
