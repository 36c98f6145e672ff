"""``POST /api/analytics/export``: stream a query's rows as CSV or JSON.

Body (JSON): ``format`` (``json`` | ``csv``), ``dataset`` (``calls`` |
``hourly`` | ``daily`` | ``anomalies``, default ``calls``), ``includeInsights`` (JSON only),
``period``/``from``/``to`` and the filters, as in the GET endpoints.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from ..errors import ApiError
from ..export import DATASETS, FORMATS, csv_chunks, export_rows, json_chunks
from ..insights.analytics import analytics_report
from .common import principal, rollup, scoped_query

__all__ = ["bp"]

bp = Blueprint("export", __name__, url_prefix="/api/analytics")
_OPTIONS = ("format", "dataset", "includeInsights")


def _body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(
            400,
            'send a JSON body with Content-Type: application/json, e.g. {"format": "csv", "period": "7d"}',
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


@bp.post("/export")
def export() -> Response:
    who = principal()  # 401 before anything about the body
    body = _body()
    fmt = body.get("format", "json")
    if fmt not in FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    dataset = body.get("dataset", "calls")
    if dataset not in DATASETS:
        raise ApiError(400, f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    include = body.get("includeInsights", False)
    if not isinstance(include, bool):
        raise ApiError(400, "includeInsights must be true or false")
    if include and fmt != "json":
        raise ApiError(400, "includeInsights needs format json (a CSV holds rows only)")
    args = {}
    for name, value in body.items():
        if name in _OPTIONS:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ApiError(400, f"{name} must be a string")
        args[name] = str(value)
    _, query = scoped_query(args, default_period="7d")
    data = export_rows(rollup(), query, dataset, who)
    filename = f"nexus-{dataset}-{query.range.period}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        return Response(stream_with_context(csv_chunks(data)), mimetype="text/csv", headers=headers)
    insights = analytics_report(rollup(), query) if include else None
    header = {"success": True, "query": query.to_dict(), "dataset": dataset}
    return Response(
        stream_with_context(json_chunks(data, header=header, insights=insights)),
        mimetype="application/json",
        headers=headers,
    )
