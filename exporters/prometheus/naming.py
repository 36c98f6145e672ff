"""OpenTelemetry → Prometheus names, exactly as the OpenTelemetry Python Prometheus exporter makes them.

The sanitising and unit mapping come from that exporter's own module, so a
series scraped from the collector has the name an in-process
``PrometheusMetricReader`` would give it (``nexus_otel.semconv.MetricSpec.prometheus``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute, sanitize_full_name

__all__ = ["Kind", "PrometheusName", "label_name", "prometheus_metric_name"]

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class PrometheusName:
    """``family`` is the OpenMetrics family name (no ``_total``); ``sample`` what the text format shows."""

    family: str
    sample: str
    unit: str


def prometheus_metric_name(name: str, unit: str, kind: Kind) -> PrometheusName:
    """Translate an OTel metric name and unit the way prometheus-client's metric families do.

    The exporter hands ``map_unit(unit)`` to prometheus-client, which appends the
    unit unless the name already ends with it; counters then get ``_total``.
    """
    family = sanitize_full_name(name)
    prom_unit = map_unit(unit or "")
    if kind == "counter" and family.endswith("_total"):
        family = family[: -len("_total")]
    if prom_unit and not family.endswith(f"_{prom_unit}"):
        family = f"{family}_{prom_unit}"
    sample = f"{family}_total" if kind == "counter" else family
    return PrometheusName(family=family, sample=sample, unit=prom_unit)


def label_name(attribute_key: str) -> str:
    """A Prometheus label name for an attribute key (dots and other characters become ``_``)."""
    return sanitize_attribute(attribute_key)
