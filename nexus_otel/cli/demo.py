"""``nexus-otel demo``: simulated AI traffic through the real instrumentation."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import click

__all__ = ["demo"]


@click.command()
@click.option(
    "--port",
    default=9464,
    show_default=True,
    help="Port of the Prometheus /metrics endpoint (0 = any free port).",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the /metrics endpoint listens on."
)
@click.option(
    "--rollup",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every event to this embedded SQLite rollup.",
)
@click.option(
    "--rate", default=20.0, show_default=True, help="Simulated model calls per second (at the daily peak)."
)
@click.option(
    "--duration", type=float, default=None, help="Stop after this many seconds (default: run until Ctrl-C)."
)
@click.option("--users", default=60, show_default=True, help="Number of simulated users.")
@click.option(
    "--seed", default=7, show_default=True, help="Random seed; the same seed gives the same traffic."
)
@click.option("--summary-every", default=5.0, show_default=True, help="Seconds between status lines.")
def demo(
    *,
    port: int,
    host: str,
    rollup: Path | None,
    rate: float,
    duration: float | None,
    users: int,
    seed: int,
    summary_every: float,
) -> None:
    """Run simulated AI traffic through nexus-otel and serve the metrics.

    Fake OpenAI and Anthropic endpoints answer the official Python clients
    in-process, so no API key or network is needed. Calls go through
    ``track_model_call`` and ``instrument_openai``/``instrument_anthropic``
    exactly as in an application: metrics are served for Prometheus at
    http://HOST:PORT/metrics and one event per call lands in the SQLite rollup.
    Stop with Ctrl-C; everything queued is flushed first.
    """
    if rate <= 0:
        raise click.BadParameter("must be > 0", param_hint="--rate")
    if duration is not None and duration <= 0:
        raise click.BadParameter("must be > 0", param_hint="--duration")
    import nexus_otel
    from nexus_otel.demo.summary import summarise
    from nexus_otel.demo.traffic import TrafficSimulator

    try:
        telemetry = nexus_otel.configure(
            prometheus_port=port,
            prometheus_host=host,
            rollup=str(rollup) if rollup else None,
            service_name="nexus-demo",
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}; pick another --port"
        ) from None
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"metrics:  {telemetry.prometheus_url}")
    if rollup:
        click.echo(f"rollup:   {rollup.resolve()}")
    click.echo("press Ctrl-C to stop")
    sim = TrafficSimulator(seed=seed, users=users, live=False)
    started = time.monotonic()
    next_summary = started + summary_every
    next_call = started
    while not stop.is_set():
        now = time.monotonic()
        if duration is not None and now - started >= duration:
            break
        if now >= next_call:
            sim.one_call()
            # rate_factor averages ~0.5 over a week; clip so a night-time demo still moves.
            factor = min(max(sim.rate_factor(time.time()) / 0.5, 0.3), 2.0)
            next_call += 1.0 / (rate * factor)
        else:
            stop.wait(min(next_call - now, 0.5))
        if now >= next_summary:
            click.echo(summarise(telemetry.metrics).line())
            next_summary += summary_every
    click.echo("stopping: flushing events and metrics ...")
    telemetry.shutdown()
    click.echo(summarise(telemetry.metrics).line())
