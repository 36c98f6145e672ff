"""Every panel query of every dashboard returns data from a real Prometheus with demo traffic.

A panel that shows "No data" on a fresh stack is a failing test. The stack is
``tests.grafana_stack.prometheus_with_demo_traffic`` (collector, Prometheus
with every rule file, backfilled history, simulated traffic). Each query runs
with the dashboard variables set to "All" (``.*``) and to one concrete value the
demo traffic holds, and with Grafana's built-ins (``$__rate_interval`` …)
substituted; instant targets run as instant queries, the rest as range queries
over the last ten minutes. Failures are collected and reported together.

Queries on the recommender's gauges are checked in their own test, which
skips while ``nexus-otel recommender`` cannot be started.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.grafana_stack import (
    ALL,
    DemoStack,
    Query,
    generator,
    prometheus_with_demo_traffic,
    queries,
    recommender_query,
    substitute,
    variable_queries,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    with prometheus_with_demo_traffic(tmp_path_factory.mktemp("grafana-stack")) as stack:
        yield stack


def settings(stack: DemoStack) -> list[tuple[str, dict[str, str]]]:
    uid = generator().DATASOURCE_UID
    return [
        ("All", {"datasource": uid, "team": ALL, "project": ALL, "model": ALL}),
        (
            "concrete",
            {"datasource": uid, **stack.concrete},
        ),
    ]


def run(url: str, query: Query, expr: str) -> str | None:
    """None when ``expr`` returns at least one finite sample, else what went wrong."""
    now = time.time()
    if query.instant:
        path, params = "/api/v1/query", {"query": expr, "time": f"{now:.3f}"}
    else:
        path = "/api/v1/query_range"
        params = {"query": expr, "start": f"{now - 600:.3f}", "end": f"{now:.3f}", "step": "15"}
    try:
        with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=20) as resp:
            body: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}"
    if body.get("status") != "success":
        return f"error: {body}"
    data = body["data"]
    if data["resultType"] == "scalar":
        samples = [data["result"]]
    else:
        samples = [
            v
            for series in data["result"]
            for v in ([series["value"]] if "value" in series else series["values"])
        ]
    if not samples:
        return "no data"
    if not any(math.isfinite(float(v)) for _, v in samples):
        return "only NaN/Inf"
    return None


def check(stack: DemoStack, selected: list[Query]) -> None:
    failures = []
    for label, values in settings(stack):
        for query in selected:
            expr = substitute(query.expr, values)
            problem = run(stack.prometheus.url, query, expr)
            if problem:
                failures.append(f"[{label}] {query}: {problem}\n    {expr.replace(chr(10), ' ')}")
    assert not failures, f"{len(failures)} panel queries return no data:\n" + "\n".join(failures)


def test_every_panel_query_returns_data(demo_stack: DemoStack) -> None:
    selected = [q for q in queries() if not recommender_query(q.expr)]
    assert len(selected) > 50
    check(demo_stack, selected)


def test_variable_queries_list_the_demo_values(demo_stack: DemoStack) -> None:
    """``label_values(metric, label)`` finds values, including the concrete ones used above."""
    failures = []
    for board, name, query in variable_queries():
        for label, values in settings(demo_stack):
            expr = substitute(query, {k: v for k, v in values.items() if k != name})
            metric, _, label_name = expr.removeprefix("label_values(").removesuffix(")").rpartition(",")
            params = urllib.parse.urlencode({"match[]": metric.strip()})
            url = f"{demo_stack.prometheus.url}/api/v1/label/{label_name.strip()}/values?{params}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                found = json.loads(resp.read())["data"]
            if demo_stack.concrete[name] not in found:
                failures.append(f"[{label}] {board} ${name}: {expr} -> {found}")
    assert not failures, "\n".join(failures)


def test_recommender_panel_queries_return_data(demo_stack: DemoStack) -> None:
    """The panels on the recommender's gauges (Users & features, Anomalies & recommendations).

    Skips until ``nexus-otel recommender --rollup PATH --port N`` exists; the
    stack then starts it on the demo rollup and Prometheus scrapes it.
    """
    selected = [q for q in queries() if recommender_query(q.expr)]
    assert selected, "the dashboards should have panels on the recommender's gauges"
    if demo_stack.recommender is None:
        pytest.skip(
            "nexus-otel recommender is not available yet: "
            + "; ".join(sorted({f"{q.dashboard} / {q.panel}" for q in selected}))
        )
    check(demo_stack, selected)
