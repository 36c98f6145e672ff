"""nexus-otel's Grafana dashboards as code: one module per dashboard.

``model`` holds the building blocks (targets, panels, variables, links),
``series`` the recorded and raw series names, the label filters and the shared
PromQL expressions; each dashboard module builds one :class:`~.model.Dashboard`.
"""

from __future__ import annotations

import json

from .anomalies import anomalies
from .costs import costs
from .model import DATASOURCE_UID, RECOMMENDER_METRICS, SCHEMA_VERSION, Dashboard
from .models import models
from .overview import overview
from .router import router
from .users import users

__all__ = ["DASHBOARDS", "DATASOURCE_UID", "RECOMMENDER_METRICS", "SCHEMA_VERSION", "Dashboard", "render"]

DASHBOARDS = (overview, costs, models, router, users, anomalies)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for build in DASHBOARDS:
        board = build().json()
        name = f"{board['uid'].removeprefix('nexus-')}.json"
        out[name] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return out
