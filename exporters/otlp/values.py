"""OTLP ``AnyValue`` and attribute lists as Python values and Prometheus label values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["attributes", "label_attributes", "label_value", "python_value"]


def python_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [python_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: python_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: python_value(kv.value) for kv in pairs}


def label_value(value: AnyValue) -> str:
    """A label value the way the OpenTelemetry Prometheus exporter writes one (non-strings as JSON)."""
    if value.WhichOneof("value") == "string_value":
        return value.string_value
    return json.dumps(python_value(value), default=str)


def label_attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: label_value(kv.value) for kv in pairs}
