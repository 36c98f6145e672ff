"""Prometheus exposition of OTLP metrics: a compact series store and a fast text renderer."""

from .derive import CostDeriver, normalise_genai_attributes
from .exposition import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, wants_openmetrics
from .naming import PrometheusName, prometheus_metric_name
from .selfmetrics import CollectorMetrics
from .store import Scope, SeriesStore

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "CollectorMetrics",
    "CostDeriver",
    "PrometheusName",
    "Scope",
    "SeriesStore",
    "normalise_genai_attributes",
    "prometheus_metric_name",
    "wants_openmetrics",
]
