"""Anomalous hours per scope (everything, each team, each model), found by pyod's ECOD and IForest.

Why this shape
--------------
LLM traffic is strongly daily-seasonal, so a raw outlier detector mostly
rediscovers "it is 14:00". Each complete hour of the last ``days`` days becomes
a vector of :data:`FEATURES`. Each feature is put on a scale where noise is
comparable: ``log1p(v / c)`` with ``c`` a tenth of the feature's typical value
(so pennies and thousands of dollars both move by ``log k`` when multiplied by
``k``; requests use ``c = 1``), and the error ratio through Anscombe's arcsine
transform (binomial noise). The median of the same hour of day over the window
is subtracted and the residual divided by a robust SD: 1.4826·MAD of all
residuals, floored by the sampling noise of the hour (Poisson for counts and
cost, binomial for errors, 10 % otherwise), so a perfectly regular series does
not turn jitter into huge z and three calls instead of five at night is not an
incident. What is left is "how unusual is this hour for this time of day".

ECOD (per-feature tail probabilities, no parameters) and IForest (random state
fixed, so reruns agree) score those vectors; the score above which the top
:data:`CONTAMINATION` of hours lie is the detector's threshold. Both always
rank some hour highest, so an hour is only an anomaly when it is above the
threshold *and* some feature deviates by at least :data:`MIN_ROBUST_Z` robust
SDs: a quiet series flags nothing. Every scored hour is stored in
``anomaly_scores`` (per-feature values, usual values and z, so the API can say
which feature was abnormal), each run in ``anomaly_runs``;
:func:`anomaly_report` reads them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from nexus_otel import clock

from ..auth import Principal
from ..params import Query, TimeRange, iso_utc
from ..store.reader import Rollup
from ..store.source import SUM_COLUMNS
from ..store.totals import derived, series

__all__ = [
    "CONTAMINATION",
    "DETECTORS",
    "FEATURES",
    "MIN_ACTIVE_HOURS",
    "MIN_ROBUST_Z",
    "anomaly_report",
    "detect",
    "refresh_if_stale",
    "scope_clause",
    "visible_scopes",
]

log = logging.getLogger(__name__)

DETECTORS: tuple[str, ...] = ("ecod", "iforest")
#: The per-hour feature vector, in this order.
FEATURES: tuple[str, ...] = ("cost_usd", "requests", "tokens_per_request", "error_ratio", "latency_p95_s")
HOUR = 3600
#: Scopes with fewer hours that had requests are too thin to learn "usual" from.
MIN_ACTIVE_HOURS = 24
#: Share of hours pyod's threshold lets through before the magnitude gate.
CONTAMINATION = 0.05
#: An anomalous hour must have a feature this many robust SDs from its usual value.
MIN_ROBUST_Z = 4.0
#: Robust SD floor in log units (~10 %): below it, differences are rounding, not behaviour.
_MIN_SD = 0.1
_MAX_SCOPES = 200
_RANDOM_STATE = 42
_lock = threading.Lock()


def _hourly(
    rollup: Rollup, start: int, end: int, filters: dict[str, str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """Hourly sums per scope: ``{scope: {hour_start: summed row}}`` (one query, summed in Python)."""
    query = Query(TimeRange(start, end, "anomaly window"), tuple(sorted(filters.items())))
    scopes: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in series(rollup, query, step=HOUR, by=("team", "model")):
        names = [] if filters else ["all"]
        if row["team"] and "model" not in filters:
            names.append(f"team:{row['team']}")
        if "team" not in filters:
            names.append(f"model:{row['model']}")
        for name in names:
            acc = scopes[name].setdefault(int(row["t"]), dict.fromkeys(SUM_COLUMNS, 0))
            for column in SUM_COLUMNS:
                acc[column] += row.get(column) or 0
    return scopes


def _values(row: dict[str, Any] | None) -> dict[str, float | None]:
    """One hour's feature values; ratios of an hour without calls are ``None`` (unknown, not zero)."""
    d = derived(row or {})
    active = d["requests"] > 0
    return {
        "cost_usd": float(d["cost_usd"]),
        "requests": float(d["requests"]),
        "tokens_per_request": float(d["tokens_per_request"]) if active else None,
        "error_ratio": float(d["error_rate"]) if active else None,
        "latency_p95_s": d["latency_p95_s"],
    }


def _robust_z(hours: list[int], values: list[dict[str, float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """De-seasonalised robust z per hour and feature, plus each hour's usual value (original units)."""
    n = len(hours)
    hod = np.array([(h // HOUR) % 24 for h in hours])
    z = np.zeros((n, len(FEATURES)))
    usual = np.zeros((n, len(FEATURES)))
    # Counts are Poisson: around m calls an hour they vary by ~1/sqrt(m+1) in log units, more at night
    # than at noon, which one MAD over all hours cannot know. Requests and cost (which scales with them)
    # get that as a per-hour-of-day floor, so a quiet scope's 3-instead-of-5 calls is not an incident.
    counts = np.array([float(v["requests"] or 0.0) for v in values])
    count_sd = np.zeros(n)
    for h in range(24):
        mask = hod == h
        count_sd[mask] = 1.0 / math.sqrt(float(np.median(counts[mask])) + 1.0) if mask.any() else 1.0
    for j, name in enumerate(FEATURES):
        raw = np.array([np.nan if v[name] is None else float(v[name]) for v in values])  # type: ignore[arg-type]
        positive = raw[np.isfinite(raw) & (raw > 0)]
        scale = (0.1 * float(np.median(positive))) if positive.size else 1.0
        if name == "error_ratio":
            # Binomial: Anscombe's arcsine transform has SD ~1/(2·sqrt(n)) whatever the rate, so one
            # failed call out of four is ~1 SD, while half of a hundred failing is ~14.
            y = np.arcsin(np.sqrt((raw * counts + 0.375) / (counts + 0.75)))
        else:
            scale = 1.0 if name == "requests" else scale
            y = np.log1p(raw / scale)  # NaN (nothing timed) stays NaN
        baseline = np.zeros(n)
        for h in range(24):
            mask = hod == h
            known = y[mask & np.isfinite(y)]
            baseline[mask] = float(np.median(known)) if known.size else 0.0
        residual = np.where(np.isfinite(y), y - baseline, 0.0)  # an hour with nothing timed is "as usual"
        sd = np.full(n, max(1.4826 * float(np.median(np.abs(residual - np.median(residual)))), _MIN_SD))
        if name in ("requests", "cost_usd"):
            sd = np.maximum(sd, count_sd)
        elif name == "error_ratio":
            sd = np.maximum(sd, 0.5 / np.sqrt(counts + 1.0))
        z[:, j] = residual / sd
        usual[:, j] = np.sin(baseline) ** 2 if name == "error_ratio" else scale * np.expm1(baseline)
    return z, usual


def _fit(detector: str, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Scores of every row of ``x`` and the detector's threshold."""
    if detector == "ecod":
        from pyod.models.ecod import ECOD

        ecod = ECOD(contamination=CONTAMINATION).fit(x)
        # ECOD's per-feature tail scores (-log tail probability), taken at their maximum rather than
        # summed: a rank-based tail score is capped at log(n), so summed over five features one extreme
        # metric (latency alone) is outranked by hours where several metrics are merely high.
        scores = np.asarray(ecod.O, dtype=float)[-len(x) :].max(axis=1)
        return scores, float(np.percentile(scores, 100 * (1 - CONTAMINATION)))
    from pyod.models.iforest import IForest

    model = IForest(contamination=CONTAMINATION, random_state=_RANDOM_STATE, n_estimators=100).fit(x)
    return np.asarray(model.decision_scores_, dtype=float), float(model.threshold_)


def _features_json(values: dict[str, float | None], usual: np.ndarray, z: np.ndarray) -> dict[str, Any]:
    order = sorted(range(len(FEATURES)), key=lambda j: -abs(z[j]))
    top = FEATURES[order[0]]
    return {
        "values": {f: (None if values[f] is None else round(float(values[f]), 8)) for f in FEATURES},  # type: ignore[arg-type]
        "usual": {f: round(float(usual[j]), 8) for j, f in enumerate(FEATURES)},
        "z": {f: round(float(z[j]), 3) for j, f in enumerate(FEATURES)},
        "top_feature": top,
        "top_z": round(float(z[order[0]]), 3),
        "deviating": [FEATURES[j] for j in order if abs(z[j]) >= MIN_ROBUST_Z],
    }


def detect(
    rollup: Rollup, *, now: float, days: int = 28, filters: dict[str, str] | None = None
) -> dict[str, Any]:
    """Score each complete hour of the last ``days`` days per scope; store the scores and the run.

    ``filters`` (``team`` or ``model``) limit the run to that one scope, e.g. to
    re-score a single team; without them "all", every team and every model are scored.
    """
    began = time.perf_counter()
    filters = dict(filters or {})
    unknown = set(filters) - {"team", "model"}
    if unknown or len(filters) > 1:
        raise ValueError(f"detect() filters may be one of team= or model=, got {sorted(filters)}")
    end = int(math.floor(now / HOUR) * HOUR)
    start = end - days * 86400
    by_scope = _hourly(rollup, start, end, filters)
    ranked = sorted(by_scope.items(), key=lambda kv: (kv[0] != "all", -len(kv[1]), kv[0]))[:_MAX_SCOPES]
    rows: list[tuple[Any, ...]] = []
    scored_scopes: list[str] = []
    anomalies = 0
    detected_at = float(now)
    for scope, hours_rows in ranked:
        active = sum(1 for r in hours_rows.values() if r["requests"])
        if active < MIN_ACTIVE_HOURS:
            continue
        hours = list(range(max(start, min(hours_rows)), end, HOUR))  # from the scope's first traffic on
        values = [_values(hours_rows.get(h)) for h in hours]
        z, usual = _robust_z(hours, values)
        scored_scopes.append(scope)
        gate = np.max(np.abs(z), axis=1) >= MIN_ROBUST_Z
        for detector in DETECTORS:
            scores, threshold = _fit(detector, z)
            flagged = (scores > threshold) & gate
            anomalies += int(flagged.sum())
            for i, h in enumerate(hours):
                features = json.dumps(_features_json(values[i], usual[i], z[i]), separators=(",", ":"))
                row = (scores[i], threshold, int(flagged[i]), features, detected_at)
                rows.append((detector, scope, h, h + HOUR, *row))
    seconds = round(time.perf_counter() - began, 3)
    run = (detected_at, start, end, json.dumps(DETECTORS), len(scored_scopes), len(rows), anomalies, seconds)
    with rollup.writer() as conn:
        conn.executemany(
            "INSERT INTO anomaly_scores (detector, scope, window_start, window_end, score, threshold, "
            "is_anomaly, features, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (detector, scope, window_start) DO UPDATE SET window_end = excluded.window_end, "
            "score = excluded.score, threshold = excluded.threshold, is_anomaly = excluded.is_anomaly, "
            "features = excluded.features, detected_at = excluded.detected_at",
            rows,
        )
        run_id = conn.execute(
            "INSERT INTO anomaly_runs (ran_at, range_start, range_end, detectors, scopes, windows, "
            "anomalies, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            run,
        ).lastrowid
    log.info("anomaly detection: %d scopes, %d hours, %d anomalies in %.2fs", *run[4:])
    keys = ("ran_at", "range_start", "range_end", "detectors", "scopes", "windows", "anomalies", "seconds")
    return {
        "id": run_id,
        **dict(zip(keys, run, strict=True)),
        "detectors": list(DETECTORS),
        "scope_names": scored_scopes,
    }


def _last_run(rollup: Rollup) -> dict[str, Any] | None:
    rows = rollup.rows("SELECT * FROM anomaly_runs ORDER BY ran_at DESC, id DESC LIMIT 1")
    return rows[0] if rows else None


def _stale(rollup: Rollup, interval: float, now: float) -> bool:
    last = _last_run(rollup)
    if last is None or interval <= 0:
        return True
    newest_complete = math.floor(now / HOUR) * HOUR
    return now - float(last["ran_at"]) >= interval or float(last["range_end"]) < newest_complete


def refresh_if_stale(rollup: Rollup, settings: dict[str, Any], now: float) -> None:
    """Run :func:`detect` if the last run is older than ``anomaly_interval_s`` or missed the newest hour.

    One run at a time per process (a module lock; the check is repeated under
    it, so requests that queued behind a run do not redo it). Errors are logged,
    never raised: a report from slightly older scores beats a failed request.
    """
    interval = float(settings.get("anomaly_interval_s", 900.0))
    try:
        with _lock:
            if _stale(rollup, interval, now):
                detect(rollup, now=now)
    except Exception:
        log.exception("anomaly detection failed; serving the scores already stored")


def visible_scopes(who: Principal, query: Query) -> tuple[list[str] | None, str | None]:
    """Scopes the caller may see under the query's filters (``None`` = all), or a note why there are none."""
    filters = query.filter_map
    if who.kind not in ("admin", "team"):
        return (
            [],
            "anomalies are computed for shared scopes (all, teams, models); a user key sees none",
        )
    if "user_id" in filters:
        return [], "anomalies are not computed per user"
    other = sorted(set(filters) - {"team", "model"})
    if other:
        return [], f"anomalies are computed per team and per model, not per {', '.join(other)}"
    if who.kind == "team":
        if filters.get("team") not in (None, who.value) or "model" in filters:
            return [], f"a team key sees only the scope team:{who.value}"
        return [f"team:{who.value}"], None
    if "team" in filters and "model" in filters:
        return [], "anomalies are computed per team or per model, not per team and model together"
    if "team" in filters:
        return [f"team:{filters['team']}"], None
    if "model" in filters:
        return [f"model:{filters['model']}"], None
    return None, None


def scope_clause(scopes: Iterable[str] | None) -> tuple[str, list[object]]:
    if scopes is None:
        return "", []
    scopes = list(scopes)
    return f" AND scope IN ({', '.join('?' * len(scopes))})", list(scopes)


def _run_dict(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "ran_at": iso_utc(float(run["ran_at"])),
        "from": iso_utc(float(run["range_start"])),
        "to": iso_utc(float(run["range_end"])),
        "detectors": json.loads(run["detectors"] or "[]"),
        "scopes": run["scopes"],
        "windows": run["windows"],
        "anomalies": run["anomalies"],
        "seconds": run["seconds"],
    }


def anomaly_report(
    rollup: Rollup, query: Query, *, who: Principal, settings: dict[str, Any]
) -> dict[str, Any]:
    """Flagged hours in the query's range and the latest score per visible scope (after a refresh)."""
    refresh_if_stale(rollup, settings, clock.now())
    report: dict[str, Any] = {
        "detectors": list(DETECTORS),
        "method": {
            "features": list(FEATURES),
            "deseasonalised": "log scale minus the median of the same hour of day, over 1.4826·MAD",
            "contamination": CONTAMINATION,
            "min_robust_z": MIN_ROBUST_Z,
        },
        "anomalies": [],
        "scopes": [],
        "last_run": _run_dict(_last_run(rollup)),
    }
    scopes, note = visible_scopes(who, query)
    if note is not None:
        report["note"] = note
    if scopes == []:
        return report
    clause, params = scope_clause(scopes)
    rows = rollup.rows(
        "SELECT * FROM anomaly_scores WHERE is_anomaly = 1 AND window_start >= ? AND window_start < ?"
        f"{clause} ORDER BY window_start, scope, detector",
        [math.ceil(query.range.start), query.range.end, *params],
    )
    for row in rows:
        report["anomalies"].append(
            {
                "detector": row["detector"],
                "scope": row["scope"],
                "window_start": iso_utc(row["window_start"]),
                "window_end": iso_utc(row["window_end"]),
                "score": round(float(row["score"]), 6),
                "threshold": round(float(row["threshold"]), 6),
                "features": json.loads(row["features"] or "{}"),
            }
        )
    latest = rollup.rows(
        "SELECT s.detector, s.scope, s.window_start, s.score, s.threshold, s.is_anomaly, s.features, "
        "(SELECT COUNT(*) FROM anomaly_scores a WHERE a.detector = s.detector AND a.scope = s.scope "
        " AND a.is_anomaly = 1 AND a.window_start >= ? AND a.window_start < ?) AS anomalies_in_range "
        "FROM anomaly_scores s JOIN (SELECT detector, scope, MAX(window_start) AS w FROM anomaly_scores "
        f"WHERE 1{clause} GROUP BY detector, scope) m ON s.detector = m.detector AND s.scope = m.scope "
        "AND s.window_start = m.w ORDER BY s.scope, s.detector",
        [math.ceil(query.range.start), query.range.end, *params],
    )
    for row in latest:
        features = json.loads(row["features"] or "{}")
        report["scopes"].append(
            {
                "scope": row["scope"],
                "detector": row["detector"],
                "latest_window_start": iso_utc(row["window_start"]),
                "score": round(float(row["score"]), 6),
                "threshold": round(float(row["threshold"]), 6),
                "is_anomaly": bool(row["is_anomaly"]),
                "top_feature": features.get("top_feature"),
                "anomalies_in_range": row["anomalies_in_range"],
            }
        )
    return report
