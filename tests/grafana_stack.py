"""A real Prometheus holding demo traffic, for running every dashboard query against it.

:func:`prometheus_with_demo_traffic` is the one place that decides what "demo
traffic" means for the dashboard tests, so swapping it for the demo's own
backfill (``nexus_otel.demo``) is one edit. Today it

1. starts our collector (``tests.servers``) with a rollup and a budgets file;
2. backfills ~26 hours of history of the series the anomaly bands compare with
   (the recorded ``team_project:*:rate5m``, error-ratio and p95-latency series),
   generated here as OpenMetrics from the simulator's daily curve, so the
   ``*_prediction`` / ``*_spread`` / ``*_zscore`` rules have a "same hour
   yesterday" to look at;
3. starts a real Prometheus loading every ``rules/*.yml`` with 1 s scrape and
   evaluation intervals, scraping the collector as ``job="nexus-collector"``
   (and the recommender, when it can be started, after nine days of calls have been
   backfilled into the rollup so it has users, cohorts and hours to learn from);
4. drives :class:`~nexus_otel.demo.traffic.TrafficSimulator` through
   ``nexus_otel.configure(otlp_endpoint=...)`` in a child process: the official
   OpenAI/Anthropic clients on a mock transport, timed by a clock that follows
   the wall clock but lets the fake providers "take" their simulated latency at
   once, so durations and time to first chunk look like production;
5. waits until the recording rules, budget gauges, active-user gauge and alert
   states exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.prom_servers import ManagedProcess, backfill_openmetrics, free_port, wait_until
from tests.prom_servers import start_prometheus as start_prometheus_process
from tests.servers import REPO, CollectorProcess, PrometheusServer, start_collector, wait_http

__all__ = [
    "ALL",
    "CONCRETE",
    "DemoStack",
    "Query",
    "generator",
    "load_dashboards",
    "prometheus_with_demo_traffic",
    "provisioned_datasource_uids",
    "queries",
    "recommender_query",
    "substitute",
    "synthetic_history",
    "variable_queries",
]

#: One concrete value per dashboard variable that the demo traffic is known to hold
#: together (support/helpdesk calls gpt-4o-mini, streamed and routed from gpt-4o).
CONCRETE = {"team": "support", "project": "helpdesk", "model": "gpt-4o-mini"}

#: Budgets sized so the month-to-date spend of a short test run crosses alert
#: thresholds: every scope (team, project, model) has series.
BUDGETS = {
    "budgets": [
        {"team": "support", "monthly_usd": 0.05, "models": {"gpt-4o-mini": 0.02}},
        {"team": "platform", "monthly_usd": 500},
        {"team": "growth", "monthly_usd": 200},
        {"team": "support", "project": "helpdesk", "monthly_usd": 0.1},
        {"team": "platform", "project": "devtools", "monthly_usd": 400},
        {"team": "growth", "project": "website", "monthly_usd": 100},
        {"team": "growth", "project": "crm", "monthly_usd": 100},
        {"models": {"claude-sonnet-4-5": 300, "gpt-4.1": 300, "o4-mini": 150}},
    ]
}

TEAM_PROJECTS = {
    ("support", "helpdesk"): 2 / 6,
    ("platform", "devtools"): 2 / 6,
    ("growth", "website"): 1 / 6,
    ("growth", "crm"): 1 / 6,
}
MODELS = {
    "openai": ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini", "gpt-4.1", "gpt-4.1-nano"),
    "anthropic": ("claude-haiku-4-5", "claude-sonnet-4-5"),
}

TRAFFIC = textwrap.dedent(
    """
    import sys, time
    import nexus_otel
    from nexus_otel.clock import SimulatedClock
    from nexus_otel.demo.traffic import TrafficSimulator

    url, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    nexus_otel.configure(
        otlp_endpoint=url, service_name="nexus-demo-app", service_instance_id="demo-1",
        export_interval_s=1.0, event_flush_interval_s=0.5,
    )
    # live=True: the fake providers take their latency through nexus_otel.clock.sleep,
    # which on this clock advances simulated time at once; each call starts at "now".
    sim = TrafficSimulator(seed=11, users=60, live=True)
    sim.apply_incidents(0.0)
    began = time.time()
    done = 0
    with SimulatedClock(start=began) as clock:
        while (elapsed := time.time() - began) < seconds:
            while done < elapsed * rate:
                clock.set(time.time())
                sim.one_call()
                done += 1
            time.sleep(0.02)
    nexus_otel.shutdown()
    print(sim.totals)
    """
)


@dataclass
class DemoStack:
    """What :func:`prometheus_with_demo_traffic` yields."""

    prometheus: PrometheusServer
    collector: CollectorProcess
    workdir: Path
    recommender: ManagedProcess | None = None
    concrete: dict[str, str] = field(default_factory=lambda: dict(CONCRETE))
    traffic_log: str = ""


def synthetic_history(*, end: float, hours: float = 26.0, step_s: float = 60.0, seed: int = 3) -> str:
    """OpenMetrics history of the recorded series the anomaly bands read, ending at ``end``.

    Shapes follow :meth:`TrafficSimulator.rate_factor` (daily and weekly curve) with
    noise; levels are the order of magnitude of the test traffic. Label sets are
    exactly those the recording rules produce, so history and live samples form
    one series each.
    """
    from nexus_otel.demo.traffic import TrafficSimulator

    rng = random.Random(seed)
    start = end - hours * 3600
    steps = int((end - start) // step_s)
    times = [start + i * step_s for i in range(steps)]
    now_factor = TrafficSimulator.rate_factor(end)
    lines: list[str] = []

    def family(name: str, series: list[tuple[str, callable]]) -> None:
        lines.append(f"# TYPE {name} gauge")
        for labels, value in series:
            for t in times:
                lines.append(f"{name}{{{labels}}} {value(t):.6g} {t:.0f}")

    def curve(level: float, noise: float):
        return lambda t: max(0.0, level * TrafficSimulator.rate_factor(t) / now_factor * rng.gauss(1, noise))

    calls_per_s = 60.0
    team_project = [
        (f'nexus_team="{team}",nexus_project="{project}"', share)
        for (team, project), share in TEAM_PROJECTS.items()
    ]
    family(
        "team_project:gen_ai_client_operations:rate5m",
        [(lbl, curve(calls_per_s * s, 0.05)) for lbl, s in team_project],
    )
    family(
        "team_project:nexus_cost_usd:rate5m",
        [(lbl, curve(calls_per_s * s * 0.002, 0.08)) for lbl, s in team_project],
    )
    family(
        "team_project:gen_ai_client_token_usage_sum:rate5m",
        [(lbl, curve(calls_per_s * s * 900, 0.06)) for lbl, s in team_project],
    )
    provider_model = [
        f'gen_ai_provider_name="{provider}",gen_ai_request_model="{model}"'
        for provider, models in MODELS.items()
        for model in models
    ]
    family(
        "provider_model:gen_ai_client_operation_errors:ratio_rate5m",
        [(lbl, lambda t: max(0.0, rng.gauss(0.02, 0.008))) for lbl in provider_model],
    )
    family(
        "provider_model:gen_ai_client_operation_duration_seconds:histogram_quantile",
        [(f'{lbl},quantile="0.95"', lambda t: max(0.2, rng.gauss(5.0, 0.6))) for lbl in provider_model],
    )
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _recommender_available() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "nexus_otel", "recommender", "--help"],
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    return done.returncode == 0


def _start_recommender(workdir: Path, rollup: Path) -> ManagedProcess | None:
    """``nexus-otel recommender`` on the rollup, if that command exists yet."""
    if not _recommender_available():
        return None
    port = free_port()
    log_path = workdir / "recommender.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OTEL_"))}
    env["PYTHONPATH"] = str(REPO)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "nexus_otel", "recommender", "--rollup", str(rollup), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
        )
    managed = ManagedProcess("recommender", process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_http(f"{managed.url}/metrics", timeout=60)
    except BaseException:
        managed.stop()
        raise
    return managed


def _traffic(
    collector: CollectorProcess, workdir: Path, *, seconds: float, rate: float
) -> subprocess.Popen[str]:
    script = workdir / "traffic.py"
    script.write_text(TRAFFIC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEXUS_", "OTEL_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, str(script), collector.url, str(seconds), str(rate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workdir,
        env=env,
    )


#: Series whose presence means the stack has what every panel reads.
READY_QUERIES = (
    "team_project_feature_provider_model:gen_ai_client_operations:rate5m",
    "provider_model:gen_ai_client_operation_time_to_first_chunk_seconds:histogram_quantile",
    "team_project:nexus_cost_usd:rate5m_zscore",
    "team_project:gen_ai_client_operations:rate5m_zscore",
    "provider_model:gen_ai_client_operation_errors:ratio_rate5m_zscore",
    "provider_model:gen_ai_client_operation_duration_seconds:histogram_quantile_zscore",
    "budget:nexus_spend_usd:forecast_month_end",
    'nexus_active_users{window="1d"} > 0',
    "nexus_feedback_score_count",
    "nexus_router_confidence_bucket",
    "ALERTS",
)


@contextmanager
def prometheus_with_demo_traffic(
    workdir: Path, *, traffic_seconds: float = 20.0, calls_per_second: float = 60.0
) -> Iterator[DemoStack]:
    """Collector + Prometheus (all rules, history backfilled) + demo traffic; see the module doc."""
    with ExitStack() as stack:
        budgets = workdir / "budgets.yaml"
        budgets.write_text(yaml.safe_dump(BUDGETS, sort_keys=False))
        rollup = workdir / "rollup.db"
        collector = start_collector(
            workdir, "--rollup", str(rollup), "--budgets", str(budgets), "--series-ttl", "0"
        )
        stack.callback(collector.stop)

        if _recommender_available():
            # the recommender's insights need weeks of users and days of hours per scope;
            # 20 s of live traffic has neither, so the rollup gets nine days of history first
            from nexus_otel.demo.backfill import run_backfill

            now = time.time()
            run_backfill(rollup=rollup, start=now - 9 * 86400, end=now - 120, calls_per_day=3000, seed=5)
        recommender = _start_recommender(workdir, rollup)
        if recommender is not None:
            stack.callback(recommender.stop)

        prom_dir = workdir / "prometheus"
        prom_dir.mkdir()
        backfill_openmetrics(
            synthetic_history(end=time.time() - 60), tsdb=prom_dir / "tsdb", workdir=prom_dir
        )
        scrape = [
            {
                "job_name": "nexus-collector",
                "honor_labels": True,
                "static_configs": [{"targets": [collector.url.removeprefix("http://")]}],
            }
        ]
        if recommender is not None:
            scrape.append(
                {
                    "job_name": "nexus-recommender",
                    "static_configs": [{"targets": [recommender.url.removeprefix("http://")]}],
                }
            )
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [
                str(p) for p in sorted((REPO / "rules").glob("*.yml")) if p.name != "alertmanager.yml"
            ],
            "scrape_configs": scrape,
        }
        prometheus = PrometheusServer(start_prometheus_process(config=config, workdir=prom_dir, timeout_s=60))
        stack.callback(prometheus.stop)

        traffic = _traffic(collector, workdir, seconds=traffic_seconds, rate=calls_per_second)

        def stop_traffic() -> None:
            if traffic.poll() is None:
                traffic.kill()
                traffic.wait(timeout=10)

        stack.callback(stop_traffic)
        out, _ = traffic.communicate(timeout=traffic_seconds + 60)
        if traffic.returncode != 0:
            raise AssertionError(f"demo traffic failed ({traffic.returncode}):\n{out}")
        missing: list[str] = []

        def ready() -> bool:
            missing[:] = [q for q in READY_QUERIES if not prometheus.query(q)]
            return not missing

        try:
            wait_until(ready, timeout_s=30, what="the demo series", interval_s=0.5)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: still missing {missing}\ncollector log:\n{collector.log()[-3000:]}"
            ) from None
        yield DemoStack(prometheus, collector, workdir, recommender, traffic_log=out)


# --- the dashboards and their queries ----------------------------------------
GRAFANA = REPO / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
PROVIDERS = GRAFANA / "provisioning" / "dashboards"

#: What Grafana puts in for its built-in variables when the test runs a query: a
#: 15 s scrape interval gives $__rate_interval = 4 x 15 s; the range is an hour.
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
ALL = ".*"


@cache
def generator() -> ModuleType:
    """``grafana/generate.py`` imported as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("nexus_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> parsed dashboard, for every committed ``grafana/dashboards/*.json``."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def provisioned_datasource_uids() -> dict[str, str]:
    """Datasource uid -> type, from ``grafana/provisioning/datasources/*.yml``."""
    out = {}
    for path in sorted(DATASOURCES.glob("*.y*ml")):
        for ds in (yaml.safe_load(path.read_text()) or {}).get("datasources", []):
            out[ds["uid"]] = ds["type"]
    return out


@dataclass(frozen=True)
class Query:
    dashboard: str  # file name
    panel: str  # panel title
    ref: str  # refId
    expr: str
    instant: bool

    def __str__(self) -> str:
        kind = "instant" if self.instant else "range"
        return f"{self.dashboard} / {self.panel!r} / {self.ref} ({kind})"


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[Query]:
    """Every target of every panel of every dashboard."""
    out = []
    for name, board in load_dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                out.append(
                    Query(name, panel["title"], target["refId"], target["expr"], bool(target.get("instant")))
                )
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable name, query) of every ``query`` variable."""
    out = []
    for name, board in load_dashboards().items():
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                query = var["query"]
                out.append((name, var["name"], query["query"] if isinstance(query, dict) else query))
    return out


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` (Grafana's built-ins and ``variables``)."""
    values = {**BUILTINS, **variables}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def recommender_query(expr: str) -> bool:
    """True when the query reads a gauge only the recommender exports."""
    names = generator().RECOMMENDER_METRICS
    return any(re.search(rf"\b{re.escape(n)}\b", expr) for n in names)
