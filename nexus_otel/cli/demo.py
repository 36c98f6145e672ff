"""``nexus-otel demo``: the whole stack on this machine with simulated traffic."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import click

__all__ = ["demo", "parse_incident"]

_INCIDENT = re.compile(
    r"^(cost_spike|latency|errors|usage_drop)@(\d+(?:\.\d+)?)([smh]?)\+(\d+(?:\.\d+)?)([smh]?)$"
)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_incident(text: str):  # -> Incident
    """``KIND@START+DURATION`` with s/m/h suffixes, e.g. ``cost_spike@2m+20m``."""
    from nexus_otel.demo.traffic import Incident

    match = _INCIDENT.match(text.strip())
    if not match:
        raise click.BadParameter(
            f"{text!r}: expected KIND@START+DURATION, e.g. cost_spike@2m+20m "
            "(KIND: cost_spike, latency, errors, usage_drop)",
            param_hint="--incident",
        )
    kind, start, su, length, lu = match.groups()
    return Incident(kind, float(start) * _UNITS[su], float(length) * _UNITS[lu])


def _port(name: str, default: int) -> click.Option:
    return click.option(
        f"--{name}-port",
        type=click.IntRange(0, 65535),
        default=default,
        show_default=True,
        help=f"Port of the {name} (0 = any free port).",
    )


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("nexus-demo"),
    show_default=True,
    help="Directory for the rollup, budgets, TSDB and logs; recreated on each run.",
)
@click.option(
    "--history-days",
    type=click.FloatRange(min=0.1),
    default=7.0,
    show_default=True,
    help="Days of history backfilled into the rollup before the live traffic starts.",
)
@click.option(
    "--calls-per-day",
    type=click.FloatRange(min=1, min_open=False),
    default=20_000.0,
    show_default=True,
    help="Average model calls per day, in the history and live.",
)
@click.option(
    "--metrics-history-hours",
    type=click.FloatRange(min=0.0),
    default=25.0,
    show_default=True,
    help="Hours of history backfilled into Prometheus (one scrape per minute or two each).",
)
@click.option(
    "--scrape-interval",
    "scrape_interval_s",
    type=click.FloatRange(min=1.0),
    default=15.0,
    show_default=True,
    help="Prometheus scrape and rule evaluation interval in seconds.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address every service listens on.")
@_port("collector", 4318)
@_port("recommender", 8090)
@_port("prometheus", 9090)
@_port("alertmanager", 9093)
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of Prometheus rule files [default: rules/ of the source checkout].",
)
@click.option(
    "--alertmanager-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Alertmanager config [default: RULES/alertmanager.yml].",
)
@click.option(
    "--webhook-url", help="Where Alertmanager's webhook receivers post [default: the recommender's /alerts]."
)
@click.option(
    "--no-prometheus", is_flag=True, help="Do not start Prometheus and Alertmanager even if installed."
)
@click.option(
    "--incident",
    "incidents",
    multiple=True,
    help="Live incident KIND@START+DURATION, e.g. latency@5m+15m (repeatable) [default: cost_spike@2m+20m].",
)
@click.option("--no-incidents", is_flag=True, help="No live incidents (the history keeps its own).")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds of live traffic [default: run until Ctrl-C].",
)
@click.option(
    "--summary-every",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between status lines.",
)
@click.option(
    "--seed", default=7, show_default=True, help="Random seed; the same seed gives the same history."
)
@click.option("--users", type=click.IntRange(min=1), default=60, show_default=True, help="Simulated users.")
def demo(
    *,
    incidents: tuple[str, ...],
    no_incidents: bool,
    no_prometheus: bool,
    duration: float | None,
    summary_every: float,
    **options: object,
) -> None:
    """Run nexus-otel end to end on this machine, no Docker and no API key needed.

    \b
    1. backfills history through the real decorators into an embedded SQLite rollup
       (and the last day of metrics into Prometheus with promtool),
    2. starts the collector (OTLP in, /metrics out) and the recommender (insights API),
    3. starts Prometheus with nexus-otel's rules and Alertmanager, if installed,
    4. runs live simulated OpenAI/Anthropic traffic (official clients on a mock
       transport) with a scheduled cost spike, and prints a status line.

    Ctrl-C stops the traffic, flushes every event into the rollup and stops the
    services. Open the printed URLs: Prometheus shows the rules and alerts, the
    recommender answers /api/analytics with the Bearer key 'demo-admin-key'.
    """
    import importlib.util

    needed = ("openai", "anthropic", "sqlite_utils", "waitress")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"the demo needs {', '.join(missing)}: pip install 'nexus-otel[demo]' (or '.[all]' in a checkout)"
        )
    from nexus_otel.demo.run import DEFAULT_LIVE_INCIDENTS, Demo, DemoOptions

    live = () if no_incidents else tuple(parse_incident(i) for i in incidents) or DEFAULT_LIVE_INCIDENTS
    opts = DemoOptions(live_incidents=live, with_prometheus=not no_prometheus, **options)  # type: ignore[arg-type]
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = Demo(opts, echo=click.echo)
    bar = _Progress()
    try:
        result = runner.run(stop, summary_every_s=summary_every, duration_s=duration, progress=bar.update)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    click.echo(
        f"done: {result.backfilled_calls:,} calls backfilled, {result.live_calls:,} live; "
        f"the rollup holds {result.rollup_calls:,} calls"
    )


class _Progress:
    """A click progress bar on stderr that exists only while the backfill runs."""

    def __init__(self) -> None:
        self._bar = None
        self._done = 0

    def update(self, fraction: float) -> None:
        if self._bar is None:
            self._bar = click.progressbar(length=1000, label="history", file=click.get_text_stream("stderr"))
            self._bar.__enter__()
        step = int(fraction * 1000) - self._done
        if step > 0:
            self._bar.update(step)
            self._done += step
        if fraction >= 1.0:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
