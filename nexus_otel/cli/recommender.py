"""``nexus-otel recommender``, ``report``, ``export``, ``api-key``: the insights service and its CLI twins."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click

__all__ = ["api_key", "export", "recommender", "report"]

_FILTERS = ("team", "project", "model", "provider", "feature", "user_id")


def _settings(config_file: str | None, **overrides: Any) -> dict[str, Any]:
    from recommender.config import ConfigError, load_settings

    try:
        return load_settings(config_file, overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _filter_options(fn: Any) -> Any:
    for name in reversed(_FILTERS):
        fn = click.option(f"--{name.replace('_', '-')}", name, help=f"Only rows whose {name} is this.")(fn)
    return fn


def _common_options(fn: Any) -> Any:
    fn = _filter_options(fn)
    fn = click.option("--to", "to_", help="End of a custom range (ISO 8601 or Unix seconds).")(fn)
    fn = click.option("--from", "from_", help="Start of a custom range (ISO 8601 or Unix seconds).")(fn)
    fn = click.option(
        "--period",
        default="7d",
        show_default=True,
        help="1h, 24h, 7d, 30d, 90d, mtd (month to date) or custom (with --from/--to).",
    )(fn)
    fn = click.option(
        "--rollup", type=click.Path(dir_okay=False), help="The SQLite rollup [default: from the config]."
    )(fn)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="YAML file with a 'recommender:' section.",
    )(fn)


def _query(period: str, from_: str | None, to_: str | None, filters: dict[str, str | None]) -> Any:
    from recommender.errors import ApiError
    from recommender.params import parse_query

    args = {"period": period, **{k: v for k, v in filters.items() if v is not None}}
    if from_ is not None or to_ is not None:
        args.update({"from": from_ or "", "to": to_ or ""})
        if period == "7d":
            args["period"] = "custom"
    try:
        return parse_query(args)
    except ApiError as exc:
        raise click.UsageError(exc.message) from None


def _open_rollup(path: str) -> Any:
    from pathlib import Path

    from recommender.store.reader import Rollup

    if not Path(path).exists():
        raise click.ClickException(
            f"rollup {path} does not exist; pass --rollup or set rollup_path in the config"
        )
    return Rollup(path)


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML file with a 'recommender:' section [default: $NEXUS_RECOMMENDER_CONFIG].",
)
@click.option("--rollup", type=click.Path(dir_okay=False), help="The SQLite rollup the collector writes.")
@click.option("--budgets", type=click.Path(dir_okay=False), help="budgets.yaml for month-to-date vs budget.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0 for all)."
)
@click.option("--port", default=8090, show_default=True, type=int, help="TCP port.")
@click.option("--threads", default=4, show_default=True, type=int, help="Request worker threads.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Lowest level of log lines on stderr.",
)
def recommender(  # noqa: PLR0917 - click passes every option by keyword
    config_file: str | None,
    rollup: str | None,
    budgets: str | None,
    host: str,
    port: int,
    threads: int,
    log_level: str,
) -> None:
    """Serve insights, forecasts, recommendations, anomalies and exports over the rollup.

    \b
    Endpoints (API key in 'Authorization: Bearer KEY'):
      GET  /api/analytics                users, usage, costs, models, performance, business
      GET  /api/analytics/costs          breakdowns, budgets, month/quarter/year forecasts, router savings
      GET  /api/analytics/models         per-model usage, latency, quality, cost efficiency
      GET  /api/insights/recommendations ranked, with estimated monthly savings and evidence
      GET  /api/anomalies                pyod (ECOD, IForest) anomalies per team and model
      POST /api/analytics/export         streamed CSV or JSON
      POST /alerts, GET /api/alerts      Alertmanager webhook inbox
      GET  /metrics, /healthz            Prometheus gauges, liveness (no key)

    Query parameters: period (1h, 24h, 7d, 30d, 90d, mtd, custom with from/to) and
    the filters team, project, model, provider, feature, user_id. Make keys with
    `nexus-otel api-key`. Settings: defaults, the config file, NEXUS_RECOMMENDER_*
    environment variables, then these flags.

    The standard periods (24h, 7d, 30d, 90d, mtd) of the admin scope and of each
    team key are computed in the background and answered at once; a pass runs when
    precompute_interval_s (default 60, 0: off) has passed and the rollup changed.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(config_file, rollup_path=rollup, budgets_path=budgets)
    from waitress import create_server

    from recommender.app import create_app

    try:
        app = create_app(settings, environ={})
        server = create_server(app, host=host, port=port, threads=threads, ident="nexus-otel-recommender")
    except OSError as exc:
        raise click.ClickException(f"cannot start the recommender: {exc}") from None

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"nexus-otel recommender listening on http://{host}:{server.effective_port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    finally:
        server.close()


@click.command(context_settings={"max_content_width": 100})
@_common_options
@click.option(
    "--section",
    type=click.Choice(["analytics", "costs", "models", "recommendations", "anomalies"]),
    default="recommendations",
    show_default=True,
    help="Which insights to print.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the API would return instead of text.")
def report(  # noqa: PLR0917 - click passes every option by keyword
    config_file: str | None,
    rollup: str | None,
    period: str,
    from_: str | None,
    to_: str | None,
    section: str,
    as_json: bool,
    **filters: str | None,
) -> None:
    """Print insights from the rollup, as the API would answer an admin key.

    \b
    Examples:
      nexus-otel report --rollup rollup.db                      # ranked recommendations, last 7 days
      nexus-otel report --rollup rollup.db --section costs --period mtd --team search
      nexus-otel report --rollup rollup.db --section anomalies --json
    """
    from recommender.auth import Principal

    settings = _settings(config_file, rollup_path=rollup)
    store = _open_rollup(settings["rollup_path"])
    query = _query(period, from_, to_, filters)
    admin = Principal("cli", "admin")
    data = _section(section, store, query, admin, settings)
    if as_json:
        click.echo(json.dumps({"success": True, "query": query.to_dict(), "data": data}, indent=2))
        return
    click.echo(f"{section} for {query.range.period} ({query.to_dict()['from']} to {query.to_dict()['to']})")
    for line in _text(section, data):
        click.echo(line)


def _section(section: str, store: Any, query: Any, admin: Any, settings: dict[str, Any]) -> dict[str, Any]:
    if section == "analytics":
        from recommender.insights.analytics import analytics_report

        return analytics_report(store, query)
    if section == "costs":
        from recommender.insights.costs import cost_report

        return cost_report(store, query, admin, budgets_path=settings["budgets_path"])
    if section == "models":
        from recommender.insights.models import model_report

        return model_report(store, query)
    if section == "anomalies":
        from recommender.insights.anomalies import anomaly_report

        return anomaly_report(store, query, who=admin, settings=settings)
    from recommender.insights.recommendations import recommend

    return {"recommendations": [r.to_dict() for r in recommend(store, query, who=admin, settings=settings)]}


def _text(section: str, data: dict[str, Any]) -> list[str]:
    if section == "recommendations":
        items = data["recommendations"]
        if not items:
            return ["no recommendations: nothing in this range crossed a threshold"]
        lines = []
        for rank, item in enumerate(items, start=1):
            savings = item.get("estimated_monthly_savings_usd")
            money = f" (~${savings:,.2f}/month)" if savings else ""
            lines.append(f"{rank:>2}. [{item['kind']}] {item['title']}{money}")
            lines.append(f"    {item['action']}")
        return lines
    if section == "costs":
        lines = [f"total ${data['total_usd']:,.4f} (previous period ${data['previous_period_usd']:,.4f})"]
        for dim, rows in data["breakdown"].items():
            if dim == "user":
                continue
            lines.append(f"by {dim}: " + ", ".join(f"{r[dim]} ${r['cost_usd']:,.4f}" for r in rows[:8]))
        for horizon in ("month", "quarter", "year"):
            fc = data["forecasts"][horizon]
            if fc.get("forecast_usd") is not None:
                lines.append(
                    f"{horizon} forecast ${fc['forecast_usd']:,.2f} "
                    f"(95%: ${fc['lower_usd']:,.2f}-${fc['upper_usd']:,.2f})"
                )
        for budget in data["budgets"]:
            who = "/".join(str(budget[k]) for k in ("team", "project", "model") if budget[k]) or "all"
            lines.append(
                f"budget {who}: ${budget['spent_usd']:,.2f} of ${budget['monthly_usd']:,.2f} "
                f"(forecast ${budget['forecast_usd'] or 0:,.2f})"
            )
        return lines
    return [json.dumps(data, indent=2)]


@click.command(context_settings={"max_content_width": 100})
@_common_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--dataset",
    type=click.Choice(["calls", "hourly", "daily", "anomalies"]),
    default="calls",
    show_default=True,
    help="calls: one row per model call (within retention); hourly/daily: sums per bucket and "
    "dimension; anomalies: every scored hour per detector and scope.",
)
@click.option("--include-insights", is_flag=True, help="Append the analytics report (JSON only).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="File to write ('-' for stdout).",
)
def export(  # noqa: PLR0917 - click passes every option by keyword
    config_file: str | None,
    rollup: str | None,
    period: str,
    from_: str | None,
    to_: str | None,
    fmt: str,
    dataset: str,
    include_insights: bool,
    output: str,
    **filters: str | None,
) -> None:
    """Write the rows of a range as CSV or JSON, with a progress bar on a terminal.

    The same rows and encoding as POST /api/analytics/export: streamed in
    constant memory, CSV cells that start with = + - @ neutralised with a
    leading quote. An interrupted export leaves no partial file behind.

    \b
    Example:
      nexus-otel export --rollup rollup.db --period 30d --team search -o search-30d.csv
    """
    import os

    from recommender.export import count_rows, csv_chunks, export_rows, json_chunks

    if include_insights and fmt != "json":
        raise click.UsageError("--include-insights needs --format json (a CSV holds rows only)")
    settings = _settings(config_file, rollup_path=rollup)
    store = _open_rollup(settings["rollup_path"])
    query = _query(period, from_, to_, filters)
    data = export_rows(store, query, dataset)
    total = count_rows(store, query, dataset)
    to_stdout = output == "-"
    tmp = f"{output}.partial"
    show = not to_stdout and sys.stderr.isatty()
    with click.progressbar(
        length=total or 0, label=f"exporting {dataset}", file=sys.stderr, hidden=not show or not total
    ) as bar:
        if fmt == "csv":
            chunks = csv_chunks(data, on_rows=bar.update)
        else:
            insights = None
            if include_insights:
                from recommender.insights.analytics import analytics_report

                insights = analytics_report(store, query)
            header = {"success": True, "query": query.to_dict(), "dataset": dataset}
            chunks = json_chunks(data, header=header, insights=insights, on_rows=bar.update)
        if to_stdout:
            for chunk in chunks:
                sys.stdout.write(chunk)
            return
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                for chunk in chunks:
                    fh.write(chunk)
            os.replace(tmp, output)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    rows = f"{total:,} rows" if total is not None else "rows"
    click.echo(f"wrote {rows} to {output}", err=True)


@click.command("api-key", context_settings={"max_content_width": 100})
@click.option("--name", required=True, help="A name for the key (shown in 403 messages and logs).")
@click.option("--scope", required=True, help="admin, alerts, team:<team> or user:<user_id>.")
def api_key(name: str, scope: str) -> None:
    """Make a new random API key for the recommender and print its config entry.

    The key is printed once; only its SHA-256 hash goes into the config
    (recommender.api_keys), so a leaked config does not leak keys.
    """
    from recommender.auth import generate_api_key, hash_api_key, parse_scope

    try:
        parse_scope(scope)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    key = generate_api_key()
    click.echo(f"key (keep it secret, shown once): {key}")
    click.echo("config entry (under recommender.api_keys):")
    click.echo(f"  - {json.dumps({'name': name, 'hash': hash_api_key(key), 'scope': scope})}")
