"""Monthly budgets from ``budgets.yaml``, month-to-date spend from the rollup, live reload.

File format::

    timezone: Europe/Berlin        # IANA name; the calendar month is this zone's [default: UTC]
    budgets:
      - team: search               # team and/or project
        project: helpdesk          # optional
        monthly_usd: 1000          # optional when models is given
        models: {gpt-4o: 200}      # optional per-model monthly caps within this team/project
      - models: {o1: 500}          # without team/project: caps on the model across everyone

Every budget becomes one or more series with the same identifying labels
(``nexus_team``, ``nexus_project``, ``gen_ai_request_model``, ``budget_scope``;
what a budget is not scoped by is ``"all"``), so Alertmanager inhibition with
``equal:`` on them works. ``budget_scope`` is ``project`` when a project is
given, else ``team``; each model cap is ``model``. Month-to-date spend sums the
rollup's cost from the start of the calendar month in the budget timezone
(converted to UTC) with the same filters; see :func:`exporters.rollup.spend_usd`
for how the exact boundary is honoured when the zone is not hour-aligned.

:class:`BudgetManager` reloads on file change (mtime polling) and on SIGHUP
(when asked); an invalid file keeps the last good budgets, logs the
line-numbered error and counts it. :class:`BudgetCollector` (in
``exporters.budget_metrics``) exports the gauges.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .budget_metrics import BudgetCollector

__all__ = [
    "ALL",
    "BudgetCollector",
    "BudgetFileError",
    "BudgetManager",
    "BudgetSeries",
    "BudgetSet",
    "MonthWindow",
    "load_budgets",
    "parse_budgets",
]

log = logging.getLogger(__name__)

#: Label value of a dimension a budget is not scoped by.
ALL = "all"


class BudgetFileError(ValueError):
    """An invalid budgets file; the message starts with ``path:line:``."""


@dataclass(frozen=True, slots=True)
class BudgetSeries:
    """One exported budget: its identifying labels and monthly limit."""

    team: str
    project: str
    model: str
    scope: str  # team | project | model
    monthly_usd: float

    @property
    def labels(self) -> tuple[str, str, str, str]:
        return (self.team, self.project, self.model, self.scope)

    def filters(self) -> dict[str, str]:
        """Rollup filters whose spend this budget limits."""
        wanted = {"team": self.team, "project": self.project, "model": self.model}
        return {k: v for k, v in wanted.items() if v != ALL}


@dataclass(frozen=True, slots=True)
class MonthWindow:
    """The calendar month containing ``now`` in a timezone, as UTC Unix seconds."""

    start: float
    end: float
    days_elapsed: float  # wall-clock days since the 1st, 00:00 local
    days_total: int

    @classmethod
    def containing(cls, now: float, tz: ZoneInfo) -> MonthWindow:
        local = datetime.fromtimestamp(now, timezone.utc).astimezone(tz)
        first = datetime(local.year, local.month, 1, tzinfo=tz)
        following = datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=tz)
        wall_elapsed = local.replace(tzinfo=None) - first.replace(tzinfo=None)
        days_total = (following.date() - first.date()).days
        return cls(first.timestamp(), following.timestamp(), wall_elapsed / timedelta(days=1), days_total)


@dataclass(frozen=True, slots=True)
class BudgetSet:
    timezone: str
    series: tuple[BudgetSeries, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def month(self, now: float) -> MonthWindow:
        return MonthWindow.containing(now, self.zone)

    def month_to_date(self, rollup: str | os.PathLike[str], now: float) -> dict[BudgetSeries, float]:
        """Spend in USD per series from the start of ``now``'s month (budget timezone) until its end."""
        from .rollup import open_database, spend_usd

        window = self.month(now)
        db = open_database(rollup, readonly=True)
        try:
            return {
                s: spend_usd(db, start=window.start, end=window.end, filters=s.filters()) for s in self.series
            }
        finally:
            db.close()

    def last_24h(self, rollup: str | os.PathLike[str], now: float) -> dict[BudgetSeries, float]:
        """Spend in USD per series over the 24 hours before ``now``'s minute (the burn rate
        the month-end forecast carries forward; whole minutes so minute aggregates answer)."""
        from .rollup import open_database, spend_usd

        end = now // 60 * 60
        db = open_database(rollup, readonly=True)
        try:
            return {s: spend_usd(db, start=end - 86400, end=end, filters=s.filters()) for s in self.series}
        finally:
            db.close()


# --- loading ------------------------------------------------------------------------


class _Where:
    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, node: yaml.Node, message: str) -> BudgetFileError:
        return BudgetFileError(f"{self.path}:{node.start_mark.line + 1}: {message}")


def _scalar(node: yaml.Node) -> object:
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _mapping(where: _Where, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise where.error(node, f"{what} must be a mapping")
    items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = _scalar(key_node)
        if not isinstance(key, str):
            raise where.error(key_node, f"{what}: keys must be strings, got {key!r}")
        if key in items:
            raise where.error(key_node, f"{what}: duplicate key {key!r}")
        items[key] = (key_node, value_node)
    return items


def _name(where: _Where, node: yaml.Node, what: str) -> str:
    value = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str) or not value.strip() or value == ALL:
        raise where.error(node, f"{what} must be a non-empty name other than {ALL!r}")
    return value


def _usd(where: _Where, node: yaml.Node, what: str) -> float:
    value = _scalar(node) if isinstance(node, yaml.ScalarNode) else None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise where.error(node, f"{what} must be a number of US dollars >= 0, got {value!r}")
    return float(value)


def _budget(where: _Where, node: yaml.Node, index: int) -> list[BudgetSeries]:
    what = f"budgets[{index}]"
    items = _mapping(where, node, what)
    unknown = sorted(set(items) - {"team", "project", "monthly_usd", "models"})
    if unknown:
        raise where.error(
            items[unknown[0]][0],
            f"{what}: unknown key {unknown[0]!r} (known: team, project, monthly_usd, models)",
        )
    team = _name(where, items["team"][1], f"{what}.team") if "team" in items else ALL
    project = _name(where, items["project"][1], f"{what}.project") if "project" in items else ALL
    series: list[BudgetSeries] = []
    if "monthly_usd" in items:
        if team == ALL and project == ALL:
            raise where.error(node, f"{what}: monthly_usd needs a team or a project")
        limit = _usd(where, items["monthly_usd"][1], f"{what}.monthly_usd")
        series.append(BudgetSeries(team, project, ALL, "project" if project != ALL else "team", limit))
    if "models" in items:
        models = _mapping(where, items["models"][1], f"{what}.models")
        if not models:
            raise where.error(items["models"][1], f"{what}.models must name at least one model")
        for model, (key_node, value_node) in models.items():
            _name(where, key_node, f"{what}.models key")
            series.append(
                BudgetSeries(team, project, model, "model", _usd(where, value_node, f"{what}.models.{model}"))
            )
    if not series:
        raise where.error(node, f"{what}: give monthly_usd, models, or both")
    return series


def parse_budgets(text: str, *, path: str = "budgets.yaml") -> BudgetSet:
    """Validate a budgets document; ``BudgetFileError`` names the offending line."""
    where = _Where(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        raise BudgetFileError(f"{path}:{line} invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if root is None:
        raise BudgetFileError(f"{path}: the file is empty; expected 'budgets:'")
    top = _mapping(where, root, "the top level")
    unknown = sorted(set(top) - {"timezone", "budgets"})
    if unknown:
        raise where.error(top[unknown[0]][0], f"unknown key {unknown[0]!r} (known: timezone, budgets)")
    zone = "UTC"
    if "timezone" in top:
        zone_node = top["timezone"][1]
        zone = _scalar(zone_node) if isinstance(zone_node, yaml.ScalarNode) else None
        try:
            if not isinstance(zone, str):
                raise ZoneInfoNotFoundError(zone)
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise where.error(
                zone_node, f"timezone: unknown IANA timezone {zone!r}, e.g. Europe/Berlin"
            ) from None
    if "budgets" not in top:
        raise where.error(root, "missing 'budgets:' list")
    budgets_node = top["budgets"][1]
    if not isinstance(budgets_node, yaml.SequenceNode):
        raise where.error(budgets_node, "budgets must be a list")
    series: list[BudgetSeries] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for index, node in enumerate(budgets_node.value):
        for s in _budget(where, node, index):
            if s.labels in seen:
                raise where.error(
                    node, f"budgets[{index}] repeats the {s.scope} budget of budgets[{seen[s.labels]}]"
                )
            seen[s.labels] = index
            series.append(s)
    return BudgetSet(zone, tuple(series))


def load_budgets(path: str | os.PathLike[str]) -> BudgetSet:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BudgetFileError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_budgets(text, path=os.fspath(path))


# --- live reload -------------------------------------------------------------------------


class BudgetManager:
    """The current budgets of ``path``, reloaded on change; spend read from ``rollup``.

    ``poll_interval_s``: how often the file's mtime/size is checked (0 turns
    polling off). ``install_sighup``: reload on SIGHUP too (only possible from
    the main thread). A file that fails to load never replaces good budgets.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rollup: str | os.PathLike[str] | None = None,
        *,
        poll_interval_s: float = 5.0,
        install_sighup: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.rollup = os.fspath(rollup) if rollup is not None else None
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.budgets: BudgetSet | None = None
        self.reload_errors = 0
        self.last_success: float | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._requested = threading.Event()
        self._previous_handler: object = None
        self.reload()
        if install_sighup:
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError("SIGHUP can only be installed from the main thread")
            self._previous_handler = signal.signal(signal.SIGHUP, self._on_sighup)
        self._thread: threading.Thread | None = None
        if poll_interval_s > 0 or install_sighup:
            self._thread = threading.Thread(target=self._watch, name="nexus-budgets", daemon=True)
            self._thread.start()

    @property
    def loaded(self) -> bool:
        return self.budgets is not None

    def reload(self) -> bool:
        """Load the file now; True when it was valid (and is now in effect)."""
        with self._lock:
            self._stamp = self._file_stamp()
            try:
                budgets = load_budgets(self.path)
            except BudgetFileError as exc:
                self.reload_errors += 1
                kept = "keeping the last good budgets" if self.budgets else "no budgets are in effect"
                log.error("budgets not reloaded (%s): %s", kept, exc)
                return False
            self.budgets = budgets
            self.last_success = self.clock()
            log.info(
                "budgets loaded from %s: %d series, timezone %s",
                self.path,
                len(budgets.series),
                budgets.timezone,
            )
            return True

    def spend(self, now: float | None = None) -> dict[BudgetSeries, float] | None:
        """Month-to-date spend per series, None without a rollup file."""
        budgets = self.budgets
        if budgets is None or self.rollup is None or not os.path.exists(self.rollup):
            return None
        return budgets.month_to_date(self.rollup, self.clock() if now is None else now)

    def last_24h(self, now: float | None = None) -> dict[BudgetSeries, float] | None:
        """Spend over the last 24 hours per series, None without a rollup file."""
        budgets = self.budgets
        if budgets is None or self.rollup is None or not os.path.exists(self.rollup):
            return None
        return budgets.last_24h(self.rollup, self.clock() if now is None else now)

    def close(self) -> None:
        self._stop.set()
        self._requested.set()
        if self._thread is not None:
            self._thread.join()
        if self._previous_handler is not None:
            signal.signal(signal.SIGHUP, self._previous_handler)  # type: ignore[arg-type]
            self._previous_handler = None

    def _on_sighup(self, signum: int, frame: object) -> None:
        # signal handlers must stay short: the watcher thread does the loading
        self._requested.set()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _watch(self) -> None:
        timeout = self.poll_interval_s if self.poll_interval_s > 0 else None
        while not self._stop.is_set():
            requested = self._requested.wait(timeout)
            self._requested.clear()
            if self._stop.is_set():
                return
            if requested or self._file_stamp() != self._stamp:
                self.reload()
