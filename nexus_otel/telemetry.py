"""``nexus_otel.configure()``: the SDK set-up for apps that do not run their own.

Settings are layered, lowest first: built-in defaults, ``nexus.yaml`` (the
``config_file`` argument, else ``$NEXUS_CONFIG``, else ``./nexus.yaml`` when it
exists), ``NEXUS_*`` environment variables, then explicit arguments. The
standard ``OTEL_*`` variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_EXPORTER_OTLP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``) are honoured by the
OpenTelemetry SDK components built here.

Needs the ``[sdk]`` extra; ``import nexus_otel`` does not import any of it.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .aggregate import AggregatingMetrics
from .cardinality import DEFAULT_MAX_VALUES
from .recorder import Recorder, set_recorder
from .sink import EventSink

__all__ = ["ConfigError", "Settings", "Telemetry", "configure", "load_settings", "shutdown"]


class ConfigError(ValueError):
    """A setting has a value nexus-otel cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    service_name: str | None = None
    service_instance_id: str | None = None
    prometheus_port: int | None = None  # 0 picks a free port; None serves no endpoint
    prometheus_host: str = "127.0.0.1"
    otlp_endpoint: str | None = None  # base URL, e.g. http://collector:4318
    otlp_headers: dict[str, str] = field(default_factory=dict)
    export_interval_s: float | None = None
    rollup: str | None = None  # path of an embedded SQLite rollup
    rollup_retention_days: float = 90.0  # raw events older than this are pruned; 0 keeps them
    price_files: tuple[str, ...] = ()
    max_label_values: int = DEFAULT_MAX_VALUES
    label_caps: dict[str, int] = field(default_factory=dict)
    event_batch_size: int = 50
    event_flush_interval_s: float = 5.0
    event_queue_size: int = 10_000


_ENV = {
    "NEXUS_SERVICE_NAME": ("service_name", str),
    "NEXUS_PROMETHEUS_PORT": ("prometheus_port", int),
    "NEXUS_PROMETHEUS_HOST": ("prometheus_host", str),
    "NEXUS_OTLP_ENDPOINT": ("otlp_endpoint", str),
    "NEXUS_ROLLUP": ("rollup", str),
    "NEXUS_ROLLUP_RETENTION_DAYS": ("rollup_retention_days", float),
    "NEXUS_MAX_LABEL_VALUES": ("max_label_values", int),
    "NEXUS_EVENT_BATCH_SIZE": ("event_batch_size", int),
    "NEXUS_EVENT_FLUSH_INTERVAL": ("event_flush_interval_s", float),
    "NEXUS_EVENT_QUEUE_SIZE": ("event_queue_size", int),
    "NEXUS_PRICES_FILE": ("price_files", lambda v: tuple(p for p in v.split(os.pathsep) if p)),
}


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Resolve settings from defaults, ``nexus.yaml``, ``NEXUS_*`` env and ``overrides``."""
    names = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or os.environ.get("NEXUS_CONFIG")
    if path is None and Path("nexus.yaml").exists():
        path = "nexus.yaml"
    if path is not None:
        values.update(_read_yaml(Path(path), names))
    for var, (name, convert) in _ENV.items():
        raw = os.environ.get(var)
        if raw:
            try:
                values[name] = convert(raw)
            except ValueError:
                raise ConfigError(f"{var}={raw!r} is not a valid {name}") from None
    for name, value in overrides.items():
        if name not in names:
            raise ConfigError(f"unknown setting {name!r}; known: {', '.join(sorted(names))}")
        if value is not None:
            values[name] = value
    if values.get("otlp_endpoint") is None and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        # The standard variable turns export on, as it would for any OpenTelemetry SDK set-up.
        values["otlp_endpoint"] = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    if values.get("service_name") is None and os.environ.get("OTEL_SERVICE_NAME"):
        values["service_name"] = os.environ["OTEL_SERVICE_NAME"]
    if "price_files" in values:
        values["price_files"] = tuple(str(p) for p in values["price_files"])
    if "rollup" in values and values["rollup"] is not None:
        values["rollup"] = str(values["rollup"])
    settings = Settings(**values)
    _validate(settings)
    return settings


def _read_yaml(path: Path, names: set[str]) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    section = doc.get("telemetry", doc)  # nexus.yaml may hold other sections (collector, budgets)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'telemetry' must be a mapping")
    unknown = set(section) - names - {"collector", "recommender", "budgets"}
    if unknown:
        raise ConfigError(f"{path}: unknown telemetry setting(s) {sorted(unknown)}; known: {sorted(names)}")
    return {k: v for k, v in section.items() if k in names}


def _validate(s: Settings) -> None:
    if s.prometheus_port is not None and not 0 <= s.prometheus_port <= 65535:
        raise ConfigError(f"prometheus_port must be 0..65535, got {s.prometheus_port}")
    if s.otlp_endpoint is not None and not s.otlp_endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"otlp_endpoint must be an http(s) URL, got {s.otlp_endpoint!r}")
    for name in ("max_label_values", "event_batch_size", "event_queue_size"):
        if getattr(s, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(s, name)}")
    if not s.rollup_retention_days >= 0:  # also rejects NaN
        raise ConfigError(
            f"rollup_retention_days must be >= 0 (0 keeps raw events), got {s.rollup_retention_days}"
        )
    if s.event_flush_interval_s <= 0:
        raise ConfigError(f"event_flush_interval_s must be > 0, got {s.event_flush_interval_s}")
    if s.export_interval_s is not None and s.export_interval_s <= 0:
        raise ConfigError(f"export_interval_s must be > 0, got {s.export_interval_s}")


class Telemetry:
    """What :func:`configure` built. ``shutdown()`` flushes metrics and events."""

    def __init__(self, settings: Settings) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from prometheus_client import CollectorRegistry

        from .sdk_bridge import AggregateProducer, NexusPrometheusReader, ProducingMetricExporter
        from .semconv import EVENTS_QUEUED, INSTRUMENTATION_SCOPE
        from .version import __version__

        self.settings = settings
        attrs: dict[str, str] = {"service.instance.id": settings.service_instance_id or uuid.uuid4().hex}
        if settings.service_name:
            attrs["service.name"] = settings.service_name
        self.resource = Resource.create(attrs)
        self.metrics = AggregatingMetrics()
        producer = AggregateProducer(self.metrics, self.resource)
        readers: list[Any] = []
        self.registry = CollectorRegistry(auto_describe=True)
        self.prometheus_url: str | None = None
        self._http_server: Any = None
        if settings.prometheus_port is not None:
            readers.append(NexusPrometheusReader(producer, registry=self.registry))
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            exporter = OTLPMetricExporter(
                endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/metrics",
                headers=settings.otlp_headers or None,
            )
            interval = settings.export_interval_s * 1000 if settings.export_interval_s else None
            readers.append(
                PeriodicExportingMetricReader(
                    ProducingMetricExporter(exporter, producer), export_interval_millis=interval
                )
            )
        self.meter_provider = MeterProvider(metric_readers=readers, resource=self.resource)
        self.events = EventSink(
            self._event_exporters(),
            max_queue=settings.event_queue_size,
            batch_size=settings.event_batch_size,
            flush_interval_s=settings.event_flush_interval_s,
        )
        from .pricing import PriceTable, get_default_table

        prices = PriceTable.load(*settings.price_files) if settings.price_files else get_default_table()
        self.recorder = Recorder(
            metrics=self.metrics,
            prices=prices,
            events=self.events,
            max_label_values=settings.max_label_values,
            label_caps=dict(settings.label_caps),
            deferred=True,
        )
        # Always having one SDK-side point also guarantees every collection reaches the bridge.
        meter = self.meter_provider.get_meter(INSTRUMENTATION_SCOPE, __version__)
        meter.create_observable_gauge(
            EVENTS_QUEUED.name,
            callbacks=[lambda _options: [_observation(len(self.events))]],
            unit=EVENTS_QUEUED.unit,
            description=EVENTS_QUEUED.description,
        )
        if settings.prometheus_port is not None:
            from prometheus_client import start_http_server

            self._http_server, _thread = start_http_server(
                settings.prometheus_port, addr=settings.prometheus_host, registry=self.registry
            )
            host, port = self._http_server.server_address[:2]
            self.prometheus_url = f"http://{host}:{port}/metrics"
        self._closed = False

    def _event_exporters(self) -> list[Any]:
        exporters: list[Any] = []
        s = self.settings
        if s.otlp_endpoint:
            from .otlp_events import OtlpEventExporter, log_exporter

            exporters.append(
                OtlpEventExporter(
                    log_exporter(s.otlp_endpoint.rstrip("/") + "/v1/logs", s.otlp_headers or None),
                    self.resource,
                )
            )
        if s.rollup:
            from .sinks.rollup import RollupEventSink

            exporters.append(RollupEventSink(s.rollup, retention_days=s.rollup_retention_days or None))
        return exporters

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export queued events and push metrics now."""
        done = self.events.flush(timeout_s)
        return self.meter_provider.force_flush(int(timeout_s * 1000)) and done

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Flush and stop everything :func:`configure` started. Idempotent."""
        global _active
        if self._closed:
            return
        self._closed = True
        self.events.shutdown(timeout_s)
        self.meter_provider.shutdown(int(timeout_s * 1000))
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        with _lock:
            if _active is self:
                _active = None
                set_recorder(None)


def _observation(value: float) -> Any:
    from opentelemetry.metrics import Observation

    return Observation(value)


_active: Telemetry | None = None
_lock = threading.RLock()


def configure(config_file: str | os.PathLike[str] | None = None, **settings: Any) -> Telemetry:
    """Set up metrics and events for this process and route nexus-otel's recording to them.

    Keyword arguments are the fields of :class:`Settings`. Calling it again with
    the same settings returns the same :class:`Telemetry`; with different
    settings it raises until :func:`shutdown` is called.
    """
    global _active
    resolved = load_settings(config_file, **settings)
    with _lock:
        if _active is not None:
            if _active.settings == resolved or (not settings and config_file is None):
                return _active
            raise ConfigError(
                "nexus_otel is already configured with other settings; call nexus_otel.shutdown() first"
            )
        _active = Telemetry(resolved)
        set_recorder(_active.recorder)
        return _active


def shutdown(timeout_s: float = 10.0) -> None:
    """Flush and stop what :func:`configure` set up (no-op when not configured)."""
    active = _active
    if active is not None:
        active.shutdown(timeout_s)
