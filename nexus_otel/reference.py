"""The README's metric reference, generated from :data:`nexus_otel.semconv.METRICS`.

``python -m nexus_otel.reference`` prints it; ``tests/test_metric_contract.py``
checks that the README holds exactly this text.
"""

from __future__ import annotations

from .semconv import METRICS

__all__ = ["metric_reference"]


def metric_reference() -> str:
    lines = [
        "| Prometheus series | OpenTelemetry instrument | type | unit | labels (besides job/instance) "
        "| meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for spec in METRICS:
        labels = ", ".join(f"`{a.replace('.', '_')}`" for a in spec.attributes) or "—"
        names = (f"`{spec.prometheus}`", f"`{spec.name}`")
        row = (*names, spec.kind, f"`{spec.unit}`", labels, spec.description)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(metric_reference(), end="")
