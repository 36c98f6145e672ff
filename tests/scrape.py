"""Read a Prometheus endpoint over HTTP the way Prometheus would."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "scrape"]

_IGNORED_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}


class Scrape:
    """Samples keyed by name and label set (scope labels and empty labels dropped)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for s in family.samples:
                labels = frozenset(
                    (k, v) for k, v in s.labels.items() if v != "" and k not in _IGNORED_LABELS
                )
                self.samples[(s.name, labels)] = s.value

    def value(
        self, name: str, labels: Mapping[str, str] | None = None, *, default: float | None = None
    ) -> float:
        """The one sample of ``name`` whose labels include ``labels``; sums when several match."""
        want = set((labels or {}).items())
        matches = [v for (n, ls), v in self.samples.items() if n == name and want <= ls]
        if not matches:
            if default is not None:
                return default
            raise KeyError(
                f"no sample {name}{dict(want)} in scrape; have {sorted({n for n, _ in self.samples})}"
            )
        return sum(matches)

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(ls) for (n, ls) in self.samples if n == name]

    def names(self) -> set[str]:
        return {n for n, _ in self.samples}


def scrape(url: str, *, timeout: float = 5.0) -> Scrape:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return Scrape(resp.read().decode())
