"""Spend forecasts: linear trend plus day-of-week seasonality, fitted on whole UTC days.

``y_d = a + b*d + s[weekday(d)]`` by least squares over the last
:data:`FIT_DAYS` complete days (the seasonal terms sum to zero; with fewer
than two weeks of days the weekly term is dropped, with fewer than
:data:`MIN_DAYS` there is no forecast). A horizon's forecast is what was
already spent in it plus the predicted rest (today's remainder pro rata);
predictions are floored at zero. The band is +/- 1.96 * sigma * sqrt(days left), sigma the
residual standard deviation, i.e. a 95% interval if daily errors are
independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

__all__ = ["FIT_DAYS", "MIN_DAYS", "DailyModel", "fit_daily", "horizon_bounds"]

DAY = 86400
FIT_DAYS = 56
MIN_DAYS = 3
_Z95 = 1.96


@dataclass(frozen=True, slots=True)
class DailyModel:
    first_day: float  # Unix seconds of the first fitted day (00:00 UTC)
    intercept: float
    slope: float  # per day
    seasonal: tuple[float, ...]  # by weekday (Monday=0); zeros without seasonality
    sigma: float  # residual standard deviation per day
    days: int  # days fitted

    def predict(self, day_start: float) -> float:
        d = (day_start - self.first_day) / DAY
        weekday = datetime.fromtimestamp(day_start, timezone.utc).weekday()
        return max(0.0, self.intercept + self.slope * d + self.seasonal[weekday])

    def to_dict(self) -> dict[str, object]:
        names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        return {
            "method": "least squares: linear trend + day-of-week"
            if any(self.seasonal)
            else "least squares: linear trend",
            "days_fitted": self.days,
            "trend_usd_per_day": round(self.slope, 6),
            "weekday_effect_usd": {n: round(s, 6) for n, s in zip(names, self.seasonal, strict=False)},
            "residual_sd_usd": round(self.sigma, 6),
        }


def fit_daily(days: list[tuple[float, float]]) -> DailyModel | None:
    """Fit ``(day_start, total)`` pairs of consecutive complete days (missing days count as 0)."""
    if not days:
        return None
    days = sorted(days)[-FIT_DAYS:]
    first = days[0][0]
    n = round((days[-1][0] - first) / DAY) + 1
    if n < MIN_DAYS:
        return None
    y = np.zeros(n)
    for t, value in days:
        y[round((t - first) / DAY)] = value
    d = np.arange(n, dtype=float)
    weekday = np.array([datetime.fromtimestamp(first + i * DAY, timezone.utc).weekday() for i in range(n)])
    seasonal = n >= 14
    columns = [np.ones(n), d]
    if seasonal:
        # sum-to-zero coding: weekday k<6 gets +1 in column k, Sunday gets -1 in every column
        for k in range(6):
            columns.append(np.where(weekday == k, 1.0, np.where(weekday == 6, -1.0, 0.0)))
    x = np.column_stack(columns)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    residuals = y - x @ coef
    dof = max(n - x.shape[1], 1)
    sigma = float(math.sqrt(float(residuals @ residuals) / dof))
    effects = (0.0,) * 7
    if seasonal:
        first_six = [float(c) for c in coef[2:8]]
        effects = (*first_six, -sum(first_six))
    return DailyModel(first, float(coef[0]), float(coef[1]), effects, sigma, n)


def horizon_bounds(now: float) -> dict[str, tuple[float, float]]:
    """Start and end (Unix seconds, UTC) of the calendar month, quarter and year holding ``now``."""
    t = datetime.fromtimestamp(now, timezone.utc)
    month_start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    q_first = 3 * ((t.month - 1) // 3) + 1
    quarter_start = month_start.replace(month=q_first)
    year_start = month_start.replace(month=1)

    def add_months(d: datetime, months: int) -> datetime:
        total = d.month - 1 + months
        return d.replace(year=d.year + total // 12, month=total % 12 + 1)

    return {
        "month": (month_start.timestamp(), add_months(month_start, 1).timestamp()),
        "quarter": (quarter_start.timestamp(), add_months(quarter_start, 3).timestamp()),
        "year": (year_start.timestamp(), add_months(year_start, 12).timestamp()),
    }


def forecast_total(model: DailyModel | None, *, spent: float, now: float, end: float) -> dict[str, object]:
    """Spent so far plus the predicted rest of ``[now, end)``, with the 95% band."""
    if model is None:
        return {
            "spent_usd": round(spent, 6),
            "forecast_usd": None,
            "reason": f"needs {MIN_DAYS}+ days of history",
        }
    today = math.floor(now / DAY) * DAY
    rest = model.predict(today) * max(0.0, (today + DAY - max(now, today)) / DAY) if now < end else 0.0
    day = today + DAY
    days_left = (today + DAY - now) / DAY if now < end else 0.0
    while day < end:
        rest += model.predict(day)
        days_left += 1
        day += DAY
    half_width = _Z95 * model.sigma * math.sqrt(max(days_left, 0.0))
    total = spent + rest
    return {
        "spent_usd": round(spent, 6),
        "forecast_usd": round(total, 6),
        "lower_usd": round(max(spent, total - half_width), 6),
        "upper_usd": round(total + half_width, 6),
        "days_left": round(days_left, 3),
    }
