"""Timestamped scrapes of the demo's metrics, as OpenMetrics text for ``promtool`` backfill.

During a backfill the recorder's aggregate is turned into OTLP (the official
encoder) and fed through the collector's own receiver and series store, so the
history carries exactly the names and ``job``/``instance`` labels the live
collector will expose later; Prometheus then sees one continuous series per
label set. OpenMetrics forbids interleaving families, so each family's samples
go to their own spool file and are joined at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

__all__ = ["OpenMetricsHistory"]


class OpenMetricsHistory:
    """Collect scrapes with :meth:`snapshot`; :meth:`write` produces one OpenMetrics file."""

    def __init__(self, *, max_label_values: int = 200) -> None:
        from exporters.otlp import MetricsIngest
        from exporters.prometheus import SeriesStore

        from ..cardinality import LabelGuard

        self._store = SeriesStore(series_ttl_s=0, label_guard=LabelGuard(max_values=max_label_values))
        self._ingest = MetricsIngest(self._store)
        self._dir = Path(tempfile.mkdtemp(prefix="nexus-history-"))
        self._headers: dict[str, list[str]] = {}
        self._files: dict[str, IO[str]] = {}
        self.samples = 0
        self.snapshots = 0

    def snapshot(self, metrics_data: Any, at: float) -> None:
        """Record the SDK ``MetricsData`` (cumulative) as scraped at Unix time ``at``."""
        from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

        self._ingest.ingest(encode_metrics(metrics_data))
        stamp = f" {at:.0f}\n"
        family: str | None = None
        known = set(self._headers)  # families whose header lines are already kept
        for line in self._store.render(openmetrics=True).splitlines():
            if not line:
                continue
            if line.startswith("#"):  # "# HELP|TYPE|UNIT <family> ...": a family begins
                family = line.split(" ", 3)[2]
                if family not in known:
                    self._headers.setdefault(family, []).append(line)
                continue
            if family is None:
                continue
            out = self._files.get(family)
            if out is None:
                out = self._files[family] = (self._dir / f"{len(self._files)}.om").open("w")
            out.write(line + stamp)
            self.samples += 1
        self.snapshots += 1

    def write(self, path: Path) -> int:
        """Join the families into ``path`` (ending ``# EOF``); returns the number of samples."""
        with path.open("w") as out:
            for family, headers in self._headers.items():
                spool = self._files.get(family)
                if spool is None:
                    continue
                spool.close()
                out.write("\n".join(headers) + "\n")
                with open(spool.name) as source:
                    shutil.copyfileobj(source, out, 1 << 20)
            out.write("# EOF\n")
        return self.samples

    def close(self) -> None:
        for spool in self._files.values():
            spool.close()
        shutil.rmtree(self._dir, ignore_errors=True)
