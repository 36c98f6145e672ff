"""Prometheus text (0.0.4) and OpenMetrics 1.0 rendering of the series store.

Label text is stored pre-escaped per series, so a render is one pass of string
formatting and a join; the output is checked by ``promtool check metrics`` and
prometheus-client's parsers in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import accumulate

from prometheus_client.utils import floatToGoString

from .store import Family

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "number",
    "render_families",
    "wants_openmetrics",
]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

_INF = float("inf")


def wants_openmetrics(accept: str | None) -> bool:
    """True when an ``Accept`` header asks for OpenMetrics (as Prometheus' scrape header does)."""
    return bool(accept) and "application/openmetrics-text" in accept


def number(value: float) -> str:
    """A sample value as Prometheus parses it (``+Inf``, ``NaN``, Python's shortest float repr)."""
    if math.isnan(value):
        return "NaN"
    if value in (_INF, -_INF):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _help(text: str, *, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def render_families(families: Iterable[Family], target_labels: Iterable[str], *, openmetrics: bool) -> str:
    out: list[str] = []
    targets = [labels for labels in target_labels if labels]
    if targets:
        if openmetrics:
            out.append("# HELP target Target metadata\n# TYPE target info")
        else:
            out.append("# HELP target_info Target metadata\n# TYPE target_info gauge")
        out.extend(f"target_info{{{labels}}} 1" for labels in targets)
    for family in families:
        if family.series:
            _render_family(family, out, openmetrics=openmetrics)
    out.append("")
    return "\n".join(out)


def _render_family(family: Family, out: list[str], *, openmetrics: bool) -> None:
    name = family.name
    header = name.family if openmetrics else name.sample
    kind = family.kind
    out.append(f"# HELP {header} {_help(family.help, openmetrics=openmetrics)}")
    out.append(f"# TYPE {header} {kind}")
    if openmetrics and name.unit:
        out.append(f"# UNIT {header} {name.unit}")
    series = family.series.values()
    if kind != "histogram":
        sample = name.sample
        out.extend(
            f"{sample}{{{s.labels}}} {number(s.value)}" if s.labels else f"{sample} {number(s.value)}"
            for s in series
        )
        return
    les = [floatToGoString(b) for b in family.bounds]
    les.append("+Inf")
    bucket, count, total = f"{name.family}_bucket{{", f"{name.family}_count", f"{name.family}_sum"
    for s in series:
        prefix = f"{bucket}{s.labels}," if s.labels else bucket
        out.extend(f'{prefix}le="{le}"}} {c}' for le, c in zip(les, accumulate(s.counts), strict=False))
        if s.labels:
            out.append(f"{count}{{{s.labels}}} {s.count}")
            out.append(f"{total}{{{s.labels}}} {number(s.sum)}")
        else:
            out.append(f"{count} {s.count}")
            out.append(f"{total} {number(s.sum)}")
