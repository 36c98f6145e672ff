"""Budget gauges for Prometheus, as a prometheus-client custom collector.

Values are computed at scrape time from the :class:`~exporters.budgets.BudgetManager`
(current budgets) and the rollup (month-to-date spend), so they never go stale
between reloads. Every budget series carries the same four identifying labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nexus_otel import semconv

from .prometheus.naming import label_name

if TYPE_CHECKING:
    from .budgets import BudgetManager

__all__ = ["BUDGET_LABELS", "BudgetCollector"]

log = logging.getLogger(__name__)

BUDGET_LABELS = (
    label_name(semconv.TEAM),
    label_name(semconv.PROJECT),
    label_name(semconv.REQUEST_MODEL),
    "budget_scope",
)


def _families() -> dict[str, Metric]:
    return {
        "budget": GaugeMetricFamily(
            "nexus_budget_usd", "Monthly budget in US dollars.", labels=BUDGET_LABELS
        ),
        "spend": GaugeMetricFamily(
            "nexus_spend_month_to_date_usd",
            "Spend in US dollars since the 1st of the month in the budget timezone, from the rollup.",
            labels=BUDGET_LABELS,
        ),
        "last_24h": GaugeMetricFamily(
            "nexus_spend_last_24h_usd",
            "Spend in US dollars over the last 24 hours, from the rollup: the burn rate a month-end "
            "forecast carries forward.",
            labels=BUDGET_LABELS,
        ),
        "elapsed": GaugeMetricFamily(
            "nexus_budget_month_days_elapsed",
            "Wall-clock days elapsed in the current month of the budget timezone (fractional).",
        ),
        "total": GaugeMetricFamily(
            "nexus_budget_month_days_total", "Days in the current month of the budget timezone."
        ),
        "errors": CounterMetricFamily(
            "nexus_budget_reload_errors",
            "Loads of the budgets file that failed (the last good budgets stay).",
        ),
        "success": GaugeMetricFamily(
            "nexus_budget_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the budgets file.",
        ),
    }


class BudgetCollector(Collector):
    """Register with a ``CollectorRegistry``; each scrape reads budgets and spend afresh."""

    def __init__(self, manager: BudgetManager, *, clock: Callable[[], float] | None = None) -> None:
        self.manager = manager
        self.clock = clock or manager.clock or time.time

    def describe(self) -> Iterator[Metric]:
        # names only: registering must not query the rollup
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        families = _families()
        manager = self.manager
        families["errors"].add_metric([], manager.reload_errors)
        if manager.last_success is not None:
            families["success"].add_metric([], manager.last_success)
        budgets = manager.budgets
        if budgets is not None:
            now = self.clock()
            month = budgets.month(now)
            families["elapsed"].add_metric([], month.days_elapsed)
            families["total"].add_metric([], month.days_total)
            for series in budgets.series:
                families["budget"].add_metric(list(series.labels), series.monthly_usd)
            for family, read in (("spend", manager.spend), ("last_24h", manager.last_24h)):
                try:
                    values = read(now)
                except Exception:
                    log.exception("%s could not be read from %s", family, manager.rollup)
                    values = None
                for series, usd in (values or {}).items():
                    families[family].add_metric(list(series.labels), usd)
        yield from families.values()
