#!/usr/bin/env python3
"""Generate nexus-otel's Grafana dashboards (``grafana/dashboards/*.json``).

Plain Python, no dependencies: every panel is built by the same few helpers, so
the six dashboards share variables, units, thresholds, links and query filters.
The committed JSON is what Grafana loads; ``tests/test_grafana_dashboards.py``
proves it equals this script's output, so edit this file and run::

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if a committed file differs

Queries prefer the recording rules of ``rules/recording.yml`` (their names
say which labels they keep); raw series appear only where no rule fits (totals
over the dashboard's time range, feedback, feature usage, router confidence).
Every query filters by the variables its series carry: ``$team``/``$project``
(``nexus_team``/``nexus_project``) and ``$model`` (``gen_ai_request_model``);
gauges without those labels (active users, the recommender's insights) are not
filtered. The output is deterministic (sorted keys, fixed ids and layout).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"

#: uid of the provisioned Prometheus datasource (grafana/provisioning/datasources/).
DATASOURCE_UID = "nexus-prometheus"
#: Written by Grafana 10.4-11.2; newer Grafana (the compose file pins 11.x) migrates on load.
SCHEMA_VERSION = 39
TAG = "nexus-otel"
DS = {"type": "prometheus", "uid": "${datasource}"}

#: Gauges exported by the recommender (``nexus-otel recommender``'s /metrics).
RECOMMENDER_METRICS = (
    "nexus_anomaly_score",
    "nexus_anomalies_active",
    "nexus_recommendation_monthly_savings_usd",
    "nexus_recommendations_monthly_savings_usd",
    "nexus_insights_active_users",
    "nexus_insights_stickiness_ratio",
    "nexus_insights_retention_ratio",
    "nexus_insights_churned_users",
    "nexus_insights_feature_adoption_ratio",
)

# --- label filters ------------------------------------------------------------------
TP = 'nexus_team=~"$team", nexus_project=~"$project"'
TPM = f'{TP}, gen_ai_request_model=~"$model"'
M = 'gen_ai_request_model=~"$model"'

# --- recorded series (rules/recording.yml, rules/budgets.yml, rules/anomalies.yml) ----
REQ = "team_project_feature_provider_model:gen_ai_client_operations:rate5m"
ERR = "team_project_feature_provider_model:gen_ai_client_operation_errors:rate5m"
COST = "team_project_feature_provider_model:nexus_cost_usd:rate5m"
COST_TYPE = "provider_model_cost_type:nexus_cost_usd:rate5m"
COST_1D = "team_project_provider_model:nexus_cost_usd:increase1d"
TOKENS = "team_project_provider_model_token_type:gen_ai_client_token_usage_sum:rate5m"
DETAILED = "team_project_provider_model_detailed_token_type:nexus_tokens_detailed:rate5m"
SAVINGS = "team_project_provider_model:nexus_router_savings_usd:rate5m"
BASELINE = "team_project_provider_model:nexus_router_baseline_cost_usd:rate5m"
DECISIONS = "team_project_model_baseline_routed:nexus_router_decisions:rate5m"
LATENCY_Q = "provider_model:gen_ai_client_operation_duration_seconds:histogram_quantile"
LATENCY_B = "provider_model_le:gen_ai_client_operation_duration_seconds_bucket:rate5m"
TTFT_Q = "provider_model:gen_ai_client_operation_time_to_first_chunk_seconds:histogram_quantile"
ERR_RATIO_MODEL = "provider_model:gen_ai_client_operation_errors:ratio_rate5m"
ERR_TYPE = "provider_model_error_type:gen_ai_client_operation_errors:rate5m"
REQ_MODEL = "provider_model:gen_ai_client_operations:rate5m"
REQ_TP = "team_project:gen_ai_client_operations:rate5m"

# --- raw series (nexus_otel/semconv.py, as scraped) -------------------------------
DURATION = "gen_ai_client_operation_duration_seconds"
COST_RAW = "nexus_cost_usd_total"
BASELINE_RAW = "nexus_router_baseline_cost_usd_total"


# --- building blocks ------------------------------------------------------------------
@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    fmt: str = "time_series"  # time_series | table | heatmap

    def json(self, ref: str) -> dict[str, Any]:
        return {
            "datasource": DS,
            "editorMode": "code",
            "expr": _clean(self.expr),
            "format": self.fmt,
            "instant": self.instant,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "refId": ref,
        }


def _clean(expr: str) -> str:
    lines = [line.rstrip() for line in expr.strip("\n").splitlines()]
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))
BUDGET = thresholds((None, "green"), (0.5, "yellow"), (0.75, "orange"), (0.9, "red"))
ZSCORE = thresholds((None, "red"), (-3, "transparent"), (3, "red"))


@dataclass
class Panel:
    kind: str  # stat | timeseries | bargauge | table | piechart | gauge
    title: str
    description: str
    targets: list[Target]
    unit: str = "short"
    w: int = 12
    h: int = 8
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    steps: dict[str, Any] = field(default_factory=lambda: GREEN)
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)

    def json(self, pid: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "thresholds": self.steps,
            "color": {"mode": "thresholds"},
        }
        if self.kind in ("timeseries", "piechart"):
            defaults["color"] = {"mode": "palette-classic"}
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
                **self.custom,
            }
        elif self.custom:
            defaults["custom"] = self.custom
        for key in ("decimals", "min", "max"):
            value = getattr(self, key)
            if value is not None:
                defaults[key] = value
        return {
            "datasource": DS,
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
            "id": pid,
            "links": self.links,
            "options": {**_default_options(self.kind), **self.options},
            "targets": [t.json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
            "title": self.title,
            "transformations": self.transformations,
            "type": self.kind,
        }


def _default_options(kind: str) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce,
            "textMode": "auto",
        }
    if kind == "timeseries":
        return {
            "legend": {"calcs": ["mean", "lastNotNull"], "displayMode": "table", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "bargauge":
        return {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": reduce,
            "showUnfilled": True,
        }
    if kind == "gauge":
        return {"reduceOptions": reduce, "showThresholdLabels": False, "showThresholdMarkers": True}
    if kind == "piechart":
        return {
            "legend": {"displayMode": "table", "placement": "right", "values": ["percent"]},
            "pieType": "donut",
            "reduceOptions": reduce,
            "tooltip": {"mode": "single"},
        }
    if kind == "table":
        return {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
    raise ValueError(f"unknown panel type {kind}")


def stat(
    title: str, description: str, expr: str, unit: str = "short", *, legend: str = "", **kw: Any
) -> Panel:
    kw.setdefault("w", 4)
    kw.setdefault("h", 4)
    return Panel("stat", title, description, [Target(expr, legend, instant=True)], unit, **kw)


def timeseries(title: str, description: str, *targets: Target, unit: str = "short", **kw: Any) -> Panel:
    return Panel("timeseries", title, description, list(targets), unit, **kw)


def table(title: str, description: str, *targets: Target, rename: dict[str, str], **kw: Any) -> Panel:
    """Instant queries in table format, merged on their common labels."""
    for t in targets:
        t.instant, t.fmt = True, "table"
    hide = {"Time": True}
    if len(targets) == 1:
        hide |= {"__name__": True}
    order = {name: i for i, name in enumerate(rename)}
    transformations = []
    if len(targets) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append(
        {
            "id": "organize",
            "options": {
                "excludeByName": hide,
                "includeByName": dict.fromkeys(rename, True),
                "indexByName": order,
                "renameByName": rename,
            },
        }
    )
    return Panel("table", title, description, list(targets), transformations=transformations, **kw)


def value_columns(units: dict[str, str]) -> list[dict[str, Any]]:
    """Per-column units for a merged table (columns are named ``Value #<refId>``)."""
    return [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
        for name, unit in units.items()
    ]


def dashboard_link(uid: str, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "url": f"/d/{uid}?${{__url_time_range}}&${{__all_variables}}",
        "targetBlank": False,
    }


def variables() -> list[dict[str, Any]]:
    def query(name: str, label: str, expr: str) -> dict[str, Any]:
        return {
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": DS,
            "definition": expr,
            "hide": 0,
            "includeAll": True,
            "label": label,
            "multi": True,
            "name": name,
            "options": [],
            "query": {"query": expr, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,  # on time range change
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }

    return [
        {
            "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
            "hide": 0,
            "includeAll": False,
            "label": "Data source",
            "multi": False,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
            "type": "datasource",
        },
        query("team", "Team", f"label_values({REQ_TP}, nexus_team)"),
        query("project", "Project", f'label_values({REQ_TP}{{nexus_team=~"$team"}}, nexus_project)'),
        query("model", "Model", f"label_values({REQ_MODEL}, gen_ai_request_model)"),
    ]


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    tags: list[str]
    panels: list[Panel]
    time_from: str = "now-6h"

    def json(self) -> dict[str, Any]:
        x = y = row_h = 0
        panels = []
        for pid, panel in enumerate(self.panels, start=1):
            if x + panel.w > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(panel.json(pid, x, y))
            x += panel.w
            row_h = max(row_h, panel.h)
        return {
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "description": self.description,
            "editable": False,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [
                {
                    "asDropdown": False,
                    "icon": "dashboard",
                    "includeVars": True,
                    "keepTime": True,
                    "tags": [TAG],
                    "targetBlank": False,
                    "title": "nexus-otel",
                    "tooltip": "Other nexus-otel dashboards",
                    "type": "dashboards",
                    "url": "",
                }
            ],
            "liveNow": False,
            "panels": panels,
            "refresh": "1m",
            "schemaVersion": SCHEMA_VERSION,
            "tags": [TAG, *self.tags],
            "templating": {"list": variables()},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
            "timezone": "utc",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


# --- shared expressions -----------------------------------------------------------------
def per_hour(expr: str) -> str:
    return f"3600 * {expr}"


def savings_over_range(selector: str) -> str:
    return f"""
        sum(increase({BASELINE_RAW}{{{selector}}}[$__range]))
        - sum(increase({COST_RAW}{{{selector}, nexus_routed="true"}}[$__range]))
    """


def error_ratio(by: str, selector: str) -> str:
    """Failed share of requests; 0 (not "no data") where there is traffic but no error series."""
    return f"""
        (
            sum by ({by}) ({ERR}{{{selector}}})
          or
            0 * sum by ({by}) ({REQ}{{{selector}}})
        )
        / (sum by ({by}) ({REQ}{{{selector}}}) > 0)
    """


def uncached_input_price(by: str = "gen_ai_provider_name, gen_ai_request_model") -> str:
    """USD per uncached input token per model, from the recorded cost and token rates."""
    return f"""
        sum by ({by}) ({COST_TYPE}{{{M}, nexus_cost_type="input"}})
        /
        (
            sum by ({by}) ({TOKENS}{{{M}, gen_ai_token_type="input"}})
          - sum by ({by}) ({DETAILED}{{{M}, nexus_token_type=~"cache_.*"}})
          > 0
        )
    """


def cache_read_price(by: str = "gen_ai_provider_name, gen_ai_request_model") -> str:
    return f"""
        sum by ({by}) ({COST_TYPE}{{{M}, nexus_cost_type="cache_read"}})
        / (sum by ({by}) ({DETAILED}{{{M}, nexus_token_type="cache_read"}}) > 0)
    """


def cache_savings_rate() -> str:
    """USD/s saved by cache reads: cached tokens x (input price - cache-read price), per model."""
    pm = "gen_ai_provider_name, gen_ai_request_model"
    return f"""
        sum by ({pm}) ({DETAILED}{{{TPM}, nexus_token_type="cache_read"}})
        * on ({pm})
        (
            ({_clean(uncached_input_price())})
          - on ({pm})
            ({_clean(cache_read_price())})
        )
    """


USD_PER_HOUR = "currencyUSD"


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
                per_hour(f"sum({_clean(cache_savings_rate())})"),
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
                    per_hour(f"sum by (gen_ai_request_model) ({_clean(cache_savings_rate())})"),
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


# --- 3. models ------------------------------------------------------------------------
def models() -> Dashboard:
    by_model = "gen_ai_request_model"
    feedback = f"""
        sum by (gen_ai_request_model) (increase(nexus_feedback_score_sum{{{TPM}}}[1h]))
        / sum by (gen_ai_request_model) (increase(nexus_feedback_score_count{{{TPM}}}[1h]))
    """
    tokens_per_request = f"""
        sum by (gen_ai_request_model) ({TOKENS}{{{TPM}}})
        / sum by (gen_ai_request_model) ({REQ}{{{TPM}}})
    """
    cost_per_request = f"""
        sum by (gen_ai_request_model) ({COST}{{{TPM}}})
        / sum by (gen_ai_request_model) ({REQ}{{{TPM}}})
    """
    return Dashboard(
        "nexus-models",
        "nexus-otel / Models",
        "Per model: usage, latency and time to first token, errors, tokens and cost per request, "
        "user feedback, and a comparison table.",
        ["models"],
        [
            Panel(
                "piechart",
                "Requests by model",
                "Share of the current request rate per requested model.",
                [Target(f"sum by ({by_model}) ({REQ}{{{TPM}}})", "{{gen_ai_request_model}}", instant=True)],
                "reqps",
                w=8,
            ),
            timeseries(
                "Requests per second by model",
                "Request rate per model (5-minute rate).",
                Target(f"sum by ({by_model}) ({REQ}{{{TPM}}})", "{{gen_ai_request_model}}"),
                unit="reqps",
                w=16,
            ),
            timeseries(
                "Call duration p50 / p95 / p99 by model",
                "Duration quantiles of successful calls per model (all teams: the recorded quantiles are "
                "per provider and model).",
                Target(f'{LATENCY_Q}{{{M}, quantile="0.5"}}', "{{gen_ai_request_model}} p50"),
                Target(f'{LATENCY_Q}{{{M}, quantile="0.95"}}', "{{gen_ai_request_model}} p95"),
                Target(f'{LATENCY_Q}{{{M}, quantile="0.99"}}', "{{gen_ai_request_model}} p99"),
                unit="s",
            ),
            timeseries(
                "Time to first token p50 / p95 by model",
                "Time from a streamed request to its first chunk (streamed calls only).",
                Target(f'{TTFT_Q}{{{M}, quantile="0.5"}}', "{{gen_ai_request_model}} p50"),
                Target(f'{TTFT_Q}{{{M}, quantile="0.95"}}', "{{gen_ai_request_model}} p95"),
                unit="s",
            ),
            timeseries(
                "Error rate by model",
                "Share of failed calls per model (0 when a model has traffic and no errors).",
                Target(f"{ERR_RATIO_MODEL}{{{M}}}", "{{gen_ai_request_model}}"),
                unit="percentunit",
                min=0,
            ),
            timeseries(
                "Errors per second by type",
                "Failed calls per model and error type (HTTP status class or exception).",
                Target(
                    f"sum by ({by_model}, error_type) ({ERR_TYPE}{{{M}}})",
                    "{{gen_ai_request_model}} {{error_type}}",
                ),
                unit="reqps",
            ),
            timeseries(
                "Tokens per request by model",
                "Billable input and output tokens per call (input includes cached, output reasoning).",
                Target(
                    f"""
                    sum by ({by_model}, gen_ai_token_type) ({TOKENS}{{{TPM}}})
                    / on ({by_model}) group_left ()
                    sum by ({by_model}) ({REQ}{{{TPM}}})
                    """,
                    "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                ),
                unit="short",
            ),
            timeseries(
                "Cost per request by model",
                "USD per call of each model (5-minute rates).",
                Target(cost_per_request, "{{gen_ai_request_model}}"),
                unit="currencyUSD",
            ),
            timeseries(
                "Feedback score by model",
                "Mean user feedback (0..1) over the trailing hour, per model.",
                Target(feedback, "{{gen_ai_request_model}}"),
                unit="percentunit",
                min=0,
                max=1,
            ),
            Panel(
                "bargauge",
                "Feedback score, trailing hour",
                "Mean user feedback (0..1) per model over the last hour.",
                [Target(feedback, "{{gen_ai_request_model}}", instant=True)],
                "percentunit",
                min=0,
                max=1,
                steps=thresholds((None, "red"), (0.6, "yellow"), (0.75, "green")),
            ),
            table(
                "Model comparison",
                "Current rates per model: requests, p95 duration, error rate, tokens and cost per call, "
                "and feedback over the last hour.",
                Target(f"sum by ({by_model}) ({REQ}{{{TPM}}})"),
                Target(f'max by ({by_model}) ({LATENCY_Q}{{{M}, quantile="0.95"}})'),
                Target(f"max by ({by_model}) ({ERR_RATIO_MODEL}{{{M}}})"),
                Target(tokens_per_request),
                Target(cost_per_request),
                Target(feedback),
                rename={
                    "gen_ai_request_model": "Model",
                    "Value #A": "Requests/s",
                    "Value #B": "p95 duration",
                    "Value #C": "Error rate",
                    "Value #D": "Tokens/request",
                    "Value #E": "USD/request",
                    "Value #F": "Feedback",
                },
                w=24,
                overrides=value_columns(
                    {
                        "Requests/s": "reqps",
                        "p95 duration": "s",
                        "Error rate": "percentunit",
                        "Tokens/request": "short",
                        "USD/request": "currencyUSD",
                        "Feedback": "percentunit",
                    }
                ),
            ),
        ],
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


DASHBOARDS = (overview, costs, models, router, users, anomalies)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for build in DASHBOARDS:
        board = build().json()
        out[f"{board['uid'].removeprefix('nexus-')}.json"] = (
            json.dumps(board, indent=2, sort_keys=True) + "\n"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    files = render()
    stale = sorted(
        name
        for name, text in files.items()
        if not (args.out / name).exists() or (args.out / name).read_text() != text
    )
    extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in files)
    if args.check:
        for name in stale + extra:
            print(f"{args.out / name} is not what grafana/generate.py produces", file=sys.stderr)
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).write_text(files[name])
        print(f"wrote {args.out / name}")
    for name in extra:
        (args.out / name).unlink()
        print(f"removed {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
