"""The Alertmanager inbox: webhook notifications stored in the rollup, listed for the UI.

Alertmanager re-sends a group on every ``repeat_interval`` and sends each
alert again when it resolves; a notification is stored once per alert
(fingerprint), status and start time, so repeats only refresh it.
"""

from __future__ import annotations

import json
from typing import Any

from nexus_otel import clock

from .errors import ApiError
from .store.reader import Rollup

__all__ = ["list_alerts", "store_notification"]

_MAX_ALERTS = 1000


def _text(alert: dict[str, Any], key: str, index: int, *, required: bool = True) -> str | None:
    value = alert.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"alerts[{index}].{key} must be a non-empty string")
    return value


def _mapping(alert: dict[str, Any], key: str, index: int) -> dict[str, str]:
    value = alert.get(key, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(400, f"alerts[{index}].{key} must be an object of strings")
    return value


def store_notification(rollup: Rollup, payload: Any) -> int:
    """Validate an Alertmanager webhook payload (version 4) and store its alerts; returns how many."""
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be an Alertmanager webhook JSON object")
    if payload.get("version") != "4":
        raise ApiError(400, f'unsupported webhook version {payload.get("version")!r}; Alertmanager sends "4"')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise ApiError(400, "alerts must be a non-empty list")
    if len(alerts) > _MAX_ALERTS:
        raise ApiError(413, f"at most {_MAX_ALERTS} alerts per notification")
    rows = []
    now = clock.now()
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise ApiError(400, f"alerts[{i}] must be an object")
        status = _text(alert, "status", i)
        if status not in ("firing", "resolved"):
            raise ApiError(400, f"alerts[{i}].status must be firing or resolved")
        labels = _mapping(alert, "labels", i)
        annotations = _mapping(alert, "annotations", i)
        if "alertname" not in labels:
            raise ApiError(400, f"alerts[{i}].labels.alertname is missing")
        rows.append(
            (
                now,
                _text(alert, "fingerprint", i),
                status,
                labels["alertname"],
                labels.get("severity"),
                _text(alert, "startsAt", i),
                _text(alert, "endsAt", i, required=False),
                json.dumps(labels, sort_keys=True),
                json.dumps(annotations, sort_keys=True),
                payload.get("receiver") if isinstance(payload.get("receiver"), str) else None,
                payload.get("groupKey") if isinstance(payload.get("groupKey"), str) else None,
                _text(alert, "generatorURL", i, required=False),
            )
        )
    with rollup.writer() as conn:
        conn.executemany(
            "INSERT INTO alert_notifications (received_at, fingerprint, status, alertname, severity, "
            "starts_at, ends_at, "
            "labels, annotations, receiver, group_key, generator_url) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (fingerprint, status, starts_at) DO UPDATE SET received_at = excluded.received_at, "
            "ends_at = excluded.ends_at, annotations = excluded.annotations",
            rows,
        )
    return len(rows)


def list_alerts(
    rollup: Rollup,
    *,
    status: str | None = None,
    since: float | None = None,
    limit: int = 100,
    team: str | None = None,
) -> list[dict[str, Any]]:
    """Newest first; ``team`` keeps alerts labelled with that team (``nexus_team``)."""
    clauses, params = ["1"], []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if since is not None:
        clauses.append("received_at >= ?")
        params.append(since)
    if team is not None:
        clauses.append("json_extract(labels, '$.nexus_team') = ?")
        params.append(team)
    rows = rollup.rows(
        f"SELECT * FROM alert_notifications WHERE {' AND '.join(clauses)} "
        "ORDER BY received_at DESC, id DESC LIMIT ?",
        [*params, limit],
    )
    for row in rows:
        row["labels"] = json.loads(row["labels"])
        row["annotations"] = json.loads(row["annotations"])
    return rows
