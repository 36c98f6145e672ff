"""Dashboard building blocks: targets, panels, variables, links, dashboards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .series import REQ_MODEL, REQ_TP, clean_expr

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
            "expr": clean_expr(self.expr),
            "format": self.fmt,
            "instant": self.instant,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "refId": ref,
        }


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
