"""The whole demo: history, collector, recommender, Prometheus, Alertmanager, live traffic.

:class:`Demo` runs the steps in order and owns every process it starts; the
``nexus-otel demo`` command is a thin click front end over it. Steps:

1. backfill ``history_days`` of traffic into the rollup (and the last hours of
   metrics into an OpenMetrics file) through the real decorators;
2. write demo budgets sized from the month-to-date spend, so each alert
   threshold (50/75/90%) has a team that crossed it;
3. start the collector and the recommender on the rollup;
4. if the binaries are installed: Alertmanager, then Prometheus on the
   backfilled TSDB with our rules, plus the recording rules over the history;
5. live traffic exported over OTLP to the collector until stopped.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .processes import Service, free_port, nexus_command, start_service
from .traffic import Incident

__all__ = ["DEFAULT_LIVE_INCIDENTS", "Demo", "DemoOptions", "DemoResult", "find_repo_dir"]

MARKER = ".nexus-demo"
SERVICE_NAME = "nexus-demo-app"
INSTANCE_ID = "demo-1"
#: team -> share of its budget already spent: one team past each alert threshold
BUDGET_SHARES = {"support": 0.93, "platform": 0.8, "growth": 0.6}
#: project -> share of its budget already spent
PROJECT_SHARES = {"helpdesk": 0.55, "devtools": 0.7, "website": 0.4, "crm": 0.92}
#: a cost spike two minutes in, for 20 minutes: long enough for NexusCostSpike's ``for: 10m``
DEFAULT_LIVE_INCIDENTS = (Incident("cost_spike", 120.0, 1200.0),)


def find_repo_dir(name: str) -> Path | None:
    """``rules/`` or ``grafana/`` of a source checkout (editable install), if there is one."""
    candidate = Path(__file__).resolve().parents[2] / name
    return candidate if candidate.is_dir() else None


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    history_days: float = 7.0
    calls_per_day: float = 20_000.0
    metrics_history_hours: float = 25.0
    scrape_interval_s: float = 15.0
    seed: int = 7
    users: int = 60
    host: str = "127.0.0.1"
    collector_port: int = 4318
    recommender_port: int = 8090
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    rules_dir: Path | None = None
    alertmanager_config: Path | None = None
    webhook_url: str | None = None  # default: the recommender's alert inbox
    live_incidents: tuple[Incident, ...] = DEFAULT_LIVE_INCIDENTS
    with_prometheus: bool = True
    workers: int = 32  # live calls in flight at most
    api_key: str = "demo-admin-key"
    alerts_key: str = "demo-alerts-key"  # what Alertmanager presents to the recommender's inbox


@dataclass
class DemoResult:
    backfilled_calls: int = 0
    live_calls: int = 0
    rollup_calls: int = 0
    urls: dict[str, str] = field(default_factory=dict)


class Demo:
    def __init__(self, options: DemoOptions, *, echo: Callable[[str], None] = print) -> None:
        # child processes run in the workdir: every path handed to them must be absolute
        self.options = replace(options, workdir=options.workdir.resolve())
        self.echo = echo
        self.services: list[Service] = []
        self.result = DemoResult()
        self.telemetry: Any = None
        self.traffic: Any = None
        self.prometheus: Service | None = None
        self._stop = threading.Event()  # run() hands in the caller's: set, it ends start-up early

    # -- steps ------------------------------------------------------------------------
    def prepare_workdir(self) -> None:
        """The demo's directory is recreated on each run; refuse a directory it did not make."""
        workdir = self.options.workdir
        if workdir.exists() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
            raise RuntimeError(f"{workdir} exists and was not made by the demo; choose another --workdir")
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        (workdir / MARKER).write_text("made by nexus-otel demo; deleted and recreated on each run\n")

    @property
    def rollup(self) -> Path:
        return self.options.workdir / "rollup.db"

    def backfill(self, progress: Callable[[float], None] | None = None) -> None:
        from .backfill import run_backfill

        o = self.options
        end = float(int(time.time()))  # a whole second: the history's last scrape is exactly at its end
        history = o.workdir / "history.om" if self._prometheus_wanted() else None
        result = run_backfill(
            rollup=self.rollup,
            start=end - o.history_days * 86400,
            end=end,
            calls_per_day=o.calls_per_day,
            seed=o.seed,
            users=o.users,
            openmetrics=history,
            metrics_windows=((end - o.metrics_history_hours * 3600, end),),
            scrape_step_s=max(120.0, o.scrape_interval_s),
            service_name=SERVICE_NAME,
            service_instance_id=INSTANCE_ID,
            progress=progress,
        )
        self.result.backfilled_calls = result.calls
        self.backfilled_metrics = result.metrics
        self.history_span = (end - o.metrics_history_hours * 3600, end)
        self.history_end = end

    def write_budgets(self) -> Path:
        """Team and project budgets from the month-to-date spend: alerts and panels have something to show."""
        now = datetime.now(timezone.utc)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        db = sqlite3.connect(self.rollup)
        try:
            rows = db.execute(
                "SELECT team, project, SUM(cost_usd) FROM agg_hour"
                " WHERE bucket_start >= ? GROUP BY team, project",
                (month_start,),
            ).fetchall()
        finally:
            db.close()
        by_team: dict[str, float] = {}
        for team, _, spent in rows:
            by_team[team] = by_team.get(team, 0.0) + (spent or 0.0)
        lines = ["# Demo budgets, sized from the month-to-date spend.", "timezone: UTC", "budgets:"]
        for team, share in BUDGET_SHARES.items():
            monthly = max(round(by_team.get(team, 0.0) / share, 2), 1.0)
            lines += [f"  - team: {team}", f"    monthly_usd: {monthly}"]
        for team, project, spent in sorted(rows):
            if team and project and project in PROJECT_SHARES:
                monthly = max(round((spent or 0.0) / PROJECT_SHARES[project], 2), 1.0)
                lines += [f"  - team: {team}", f"    project: {project}", f"    monthly_usd: {monthly}"]
        path = self.options.workdir / "budgets.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _port(self, port: int) -> int:
        return port or free_port(self.options.host)

    def start_collector(self, budgets: Path) -> Service:
        o = self.options
        port = self._port(o.collector_port)
        url = f"http://{o.host}:{port}"
        service = start_service(
            "collector",
            nexus_command(
                "collector", "--host", o.host, "--port", str(port), "--rollup", str(self.rollup),
                "--budgets", str(budgets), "--spool", str(o.workdir / "spool"),
            ),
            url=url,
            ready_url=f"{url}/readyz",
            workdir=o.workdir,
        )  # fmt: skip
        self.services.append(service)
        self.result.urls["collector"] = url
        return service

    def start_recommender(self, budgets: Path) -> Service:
        from recommender.auth import hash_api_key

        o = self.options
        port = self._port(o.recommender_port)
        url = f"http://{o.host}:{port}"
        config = o.workdir / "recommender.yaml"
        config.write_text(
            json.dumps(
                {
                    "recommender": {
                        "rollup_path": str(self.rollup),
                        "budgets_path": str(budgets),
                        "api_keys": [
                            {"name": "demo", "hash": hash_api_key(o.api_key), "scope": "admin"},
                            {"name": "alertmanager", "hash": hash_api_key(o.alerts_key), "scope": "alerts"},
                        ],
                    }
                }
            )
        )
        service = start_service(
            "recommender",
            nexus_command("recommender", "--config", str(config), "--host", o.host, "--port", str(port)),
            url=url,
            ready_url=f"{url}/healthz",
            workdir=o.workdir,
        )
        self.services.append(service)
        self.result.urls["recommender"] = url
        return service

    def _prometheus_wanted(self) -> bool:
        from .prometheus import missing_binaries_hint

        return self.options.with_prometheus and missing_binaries_hint() is None

    def start_alerting(self, *, collector: Service, recommender: Service | None) -> None:
        from .prometheus import (
            PrometheusSetup,
            backfill_metrics,
            backfill_recording_rules,
            recording_rule_levels,
            start_alertmanager,
            start_prometheus,
        )

        o = self.options
        rules_dir = o.rules_dir or find_repo_dir("rules")
        if rules_dir is None:
            raise RuntimeError("the rules/ directory was not found; pass --rules DIR")
        am_config = o.alertmanager_config or rules_dir / "alertmanager.yml"
        webhook = o.webhook_url or (f"{recommender.url}/alerts" if recommender else None)
        alertmanager = start_alertmanager(
            workdir=o.workdir / "alertmanager",
            config_file=am_config,
            webhook_url=webhook,
            webhook_bearer=None if o.webhook_url else o.alerts_key,
            host=o.host,
            port=self._port(o.alertmanager_port),
        )
        self.services.append(alertmanager)
        self.result.urls["alertmanager"] = alertmanager.url
        targets = {"nexus-collector": collector.url.split("://")[1]}
        if recommender is not None:
            targets["nexus-recommender"] = recommender.url.split("://")[1]
        setup = PrometheusSetup(
            workdir=o.workdir / "prometheus",
            rule_files=tuple(sorted(p for p in rules_dir.glob("*.yml") if p.name != "alertmanager.yml")),
            scrape_targets=targets,
            scrape_interval_s=o.scrape_interval_s,
            alertmanager=alertmanager.url.split("://")[1],
            host=o.host,
        )
        history = o.workdir / "history.om"
        if history.exists():
            self.echo("loading the metrics history into Prometheus (promtool) ...")
            began = time.monotonic()
            backfill_metrics(history, setup.tsdb, stop=self._stop)
            self.echo(f"  done in {time.monotonic() - began:.1f} s")
            history.unlink()
        port = self._port(o.prometheus_port)
        prometheus = start_prometheus(setup, port=port)
        if (rules_dir / "recording.yml").exists() and hasattr(self, "history_span"):
            self.echo("recording rules over the history (promtool) ...")
            began = time.monotonic()
            start, end = self.history_span
            for level in recording_rule_levels(rules_dir / "recording.yml", setup.workdir / "rule-levels"):
                backfill_recording_rules(
                    prometheus_url=prometheus.url,
                    rules=level,
                    start=start,
                    end=end,
                    tsdb=setup.tsdb,
                    eval_interval_s=max(60.0, o.scrape_interval_s),
                    stop=self._stop,
                )
                prometheus.stop()
                prometheus = start_prometheus(setup, port=port)  # loads the new blocks
            self.echo(f"  done in {time.monotonic() - began:.1f} s")
        self.services.append(prometheus)
        self.prometheus = prometheus
        self.result.urls["prometheus"] = prometheus.url

    def start_live(self) -> None:
        import nexus_otel

        from .live import LiveTraffic

        o = self.options
        self.telemetry = nexus_otel.configure(
            otlp_endpoint=self.result.urls["collector"],
            service_name=SERVICE_NAME,
            service_instance_id=INSTANCE_ID,
            export_interval_s=min(5.0, o.scrape_interval_s),
            event_flush_interval_s=1.0,
        )
        if getattr(self, "backfilled_metrics", None) is not None:
            # the app's counters carry on from the history: one continuous series each
            self.telemetry.metrics.restore(self.backfilled_metrics)
        self.traffic = LiveTraffic(
            calls_per_day=o.calls_per_day,
            seed=o.seed,
            users=o.users,
            incidents=o.live_incidents,
            max_concurrency=o.workers,
        )
        self.traffic.start()

    # -- status -------------------------------------------------------------------------
    def status_line(self) -> str:
        from .summary import summarise

        parts = [summarise(self.telemetry.metrics).line()] if self.telemetry else []
        top = self.top_recommendation()
        if top:
            parts.append(f"top recommendation: {top}")
        firing = self.firing_alerts()
        if firing is not None:
            parts.append(f"firing alerts: {', '.join(firing) if firing else 'none'}")
        return "\n  ".join(parts)

    def top_recommendation(self) -> str | None:
        url = self.result.urls.get("recommender")
        if not url:
            return None
        try:
            request = urllib.request.Request(
                f"{url}/api/insights/recommendations?period=7d",
                headers={"Authorization": f"Bearer {self.options.api_key}"},
            )
            with urllib.request.urlopen(request, timeout=5) as resp:
                body = json.load(resp)
        except (OSError, ValueError):
            return None
        items = (body.get("data") or {}).get("recommendations") or []
        if not items:
            return "none yet"
        first = items[0]
        savings = first.get("estimated_monthly_savings_usd")
        suffix = f" (~${savings:,.0f}/month)" if isinstance(savings, (int, float)) and savings else ""
        return f"{first.get('title', first.get('kind'))}{suffix}"

    def firing_alerts(self) -> list[str] | None:
        if self.prometheus is None:
            return None
        try:
            with urllib.request.urlopen(f"{self.prometheus.url}/api/v1/alerts", timeout=5) as resp:
                alerts = json.load(resp)["data"]["alerts"]
        except (OSError, ValueError, KeyError):
            return None
        return sorted({a["labels"]["alertname"] for a in alerts if a.get("state") == "firing"})

    # -- stop -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop traffic, flush telemetry to the collector, then stop every process, last first."""
        began = time.monotonic()
        if self.traffic is not None:
            self.traffic.stop()
            self.result.live_calls = self.traffic.totals().calls
            self.echo(f"  live traffic stopped ({time.monotonic() - began:.1f} s)")
        if self.telemetry is not None:
            self.telemetry.shutdown()
            self.echo(f"  telemetry flushed to the collector ({time.monotonic() - began:.1f} s)")
        while self.services:
            service = self.services.pop()
            code = service.stop()
            self.echo(f"  {service.name} stopped (exit {code}, {time.monotonic() - began:.1f} s)")
        if self.rollup.exists():
            db = sqlite3.connect(self.rollup)
            try:
                self.result.rollup_calls = db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0]
            finally:
                db.close()

    def run(self, stop: threading.Event, *, summary_every_s: float, duration_s: float | None,
            progress: Callable[[float], None] | None = None) -> DemoResult:  # fmt: skip
        """Every step, then status lines until ``stop`` is set or ``duration_s`` passed.

        ``stop`` set during start-up ends the step running (the history, promtool) and skips
        the rest: what was written is kept and the services started are stopped, as after
        live traffic.
        """
        from .prometheus import Interrupted

        self._stop = stop

        def checked(fraction: float) -> None:
            if stop.is_set():
                raise Interrupted("history")
            if progress is not None:
                progress(fraction)

        try:
            self.prepare_workdir()
            self.echo(f"backfilling {self.options.history_days:g} days of history into {self.rollup} ...")
            began = time.monotonic()
            self.backfill(checked)
            self.echo(
                f"history: {self.result.backfilled_calls:,} calls in {time.monotonic() - began:.1f} s,"
                f" up to {self.history_end:.0f} (Unix time)"
            )
            self._run_services(stop, summary_every_s=summary_every_s, duration_s=duration_s)
        except Interrupted as step:
            self.echo(f"interrupted during start-up ({step}); stopping")
        finally:
            self.echo("stopping: flushing events, then stopping the services ...")
            self.stop()
            if not self.result.backfilled_calls and self.traffic is None:
                # stopped inside the history: what it recorded before the stop is in the rollup
                self.result.backfilled_calls = self.result.rollup_calls
        return self.result

    def _run_services(
        self, stop: threading.Event, *, summary_every_s: float, duration_s: float | None
    ) -> None:
        """Start the services and live traffic, then print status lines until stopped."""
        from .prometheus import Interrupted, missing_binaries_hint

        def check(step: str) -> None:
            if stop.is_set():
                raise Interrupted(step)

        check("history")
        budgets = self.write_budgets()
        collector = self.start_collector(budgets)
        try:
            recommender: Service | None = self.start_recommender(budgets)
        except ImportError as exc:
            recommender = None
            self.echo(f"recommender not started ({exc}); pip install 'nexus-otel[recommender]' adds it")
        check("services")
        if self.options.with_prometheus:
            hint = missing_binaries_hint()
            if hint:
                self.echo(hint)
            else:
                self.start_alerting(collector=collector, recommender=recommender)
        check("prometheus")
        self.start_live()
        for name, url in self.result.urls.items():
            self.echo(f"{name + ':':<14}{url}")
        self.echo("live traffic is running; press Ctrl-C to stop")
        started = time.monotonic()
        while not stop.wait(summary_every_s):
            self.echo(self.status_line())
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
