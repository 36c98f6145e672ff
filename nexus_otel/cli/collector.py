"""``nexus-otel collector``: the OTLP/HTTP receiver with Prometheus exposition and the SQLite rollup."""

from __future__ import annotations

import logging

import click

__all__ = ["collector"]


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="YAML file whose 'collector:' section holds these settings "
    "[default: $NEXUS_CONFIG, else ./nexus.yaml].",
)
@click.option("--host", help="Interface to listen on [default: 127.0.0.1; 0.0.0.0 for all].")
@click.option("--port", type=int, help="TCP port for OTLP/HTTP and /metrics [default: 4318].")
@click.option(
    "--rollup", type=click.Path(dir_okay=False), help="SQLite rollup file that events are committed to."
)
@click.option(
    "--spool",
    type=click.Path(file_okay=False),
    help="Directory of a durable spool: event batches are acknowledged after an fsync'd append there "
    "and committed to the rollup in the background (faster ingest; replayed on start).",
)
@click.option(
    "--retention-days",
    type=float,
    help="Days raw events stay in the rollup before pruning [default: 90; 0 keeps them]. "
    "Aggregates are kept.",
)
@click.option("--budgets", type=click.Path(dir_okay=False), help="budgets.yaml exported as budget gauges.")
@click.option(
    "--max-body-bytes",
    type=int,
    help="Largest OTLP body, compressed or not [default: 16 MiB]; larger gets 413.",
)
@click.option(
    "--series-ttl",
    "series_ttl_s",
    type=float,
    help="Seconds after which a silent sender's series are dropped [default: 900; 0 keeps them].",
)
@click.option(
    "--max-label-values",
    type=int,
    help="Distinct values per attribution label before folding into 'other' [default: 200].",
)
@click.option(
    "--auth-token-env", help="Name of the environment variable holding the bearer token senders must present."
)
@click.option("--threads", type=int, help="Request worker threads [default: 4].")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    help="Lowest level of the collector's log lines on stderr.",
    show_default=True,
)
def collector(config_file: str | None, log_level: str, **flags: object) -> None:
    """Receive OTLP/HTTP metrics and events, serve them to Prometheus, commit events to the rollup.

    \b
    Endpoints:
      POST /v1/metrics, /v1/logs   OTLP/HTTP (protobuf or JSON, optionally gzip)
      GET  /metrics                Prometheus text, or OpenMetrics on request
      GET  /healthz, /readyz       liveness, readiness (rollup writable, budgets loaded)

    Settings are layered: defaults, the 'collector:' section of nexus.yaml,
    NEXUS_COLLECTOR_* environment variables (e.g. NEXUS_COLLECTOR_PORT,
    NEXUS_COLLECTOR_SERIES_TTL_S), then these flags. Point applications at it with
    OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT or nexus_otel.configure(otlp_endpoint=...).
    SIGTERM or Ctrl-C stops it after in-flight batches are committed.
    """
    from exporters.config import ConfigError, load_config

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_file=config_file, overrides=flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    from exporters.server import serve

    try:
        serve(config)
    except OSError as exc:  # port in use, rollup directory missing ...
        raise click.ClickException(f"cannot start the collector: {exc}") from None
