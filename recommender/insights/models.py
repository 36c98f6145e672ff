"""``/api/analytics/models``: how each model is used, how it performs, what users think, what it costs.

Quality is the mean feedback score (0..1) of calls that got feedback; cost
efficiency is cost per request and per 1k tokens, and "quality per dollar"
(mean score / cost per request) when both are known. Top performers need at
least :data:`MIN_FEEDBACK` ratings to be ranked on quality.
"""

from __future__ import annotations

from typing import Any

from ..params import Query
from ..store import events
from ..store.reader import Rollup
from ..store.totals import derived, grouped

__all__ = ["MIN_FEEDBACK", "model_report"]

MIN_FEEDBACK = 10
_COMPARE = (
    "requests",
    "share",
    "cost_usd",
    "cost_per_request_usd",
    "cost_per_1k_tokens_usd",
    "tokens_per_request",
    "error_rate",
    "latency_p50_s",
    "latency_p95_s",
    "ttft_mean_s",
    "feedback_score",
)


def model_report(rollup: Rollup, query: Query) -> dict[str, Any]:
    rows = grouped(rollup, query, ("model", "provider"))
    requests = sum(int(r["requests"]) for r in rows)
    quality = events.feedback_by(rollup, query, "model")
    by_feature = grouped(rollup, query, ("model", "feature"), sums=())  # request counts only
    models: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: -int(r["requests"])):
        figures = derived(row)
        fb = quality.get(row["model"])
        score = round(fb["mean_score"], 4) if fb and fb["mean_score"] is not None else None
        cpr = figures["cost_per_request_usd"]
        models.append(
            {
                "model": row["model"],
                "provider": row["provider"],
                "share": round(figures["requests"] / requests, 4) if requests else 0.0,
                **figures,
                "feedback_score": score,
                "feedback_count": fb["count"] if fb else 0,
                "quality_per_dollar": round(score / cpr, 2) if score is not None and cpr else None,
                "features": sorted(
                    (
                        {"feature": f["feature"] or "(none)", "requests": int(f["requests"])}
                        for f in by_feature
                        if f["model"] == row["model"]
                    ),
                    key=lambda f: -f["requests"],
                ),
            }
        )
    return {
        "total_requests": requests,
        "distribution": [
            {"model": m["model"], "provider": m["provider"], "requests": m["requests"], "share": m["share"]}
            for m in models
        ],
        "models": models,
        "comparison": {
            "metrics": list(_COMPARE),
            "rows": [[m["model"], *(m.get(k) for k in _COMPARE)] for m in models],
        },
        "top_performers": _top(models),
    }


def _top(models: list[dict[str, Any]]) -> dict[str, Any]:
    rated = [m for m in models if m["feedback_count"] >= MIN_FEEDBACK]
    timed = [m for m in models if m["latency_p95_s"] is not None]
    priced = [m for m in models if m["cost_per_request_usd"]]

    def pick(items: list[dict[str, Any]], key: str, *, highest: bool) -> dict[str, Any] | None:
        if not items:
            return None
        best = max(items, key=lambda m: m[key]) if highest else min(items, key=lambda m: m[key])
        return {"model": best["model"], key: best[key]}

    return {
        "best_quality": pick(rated, "feedback_score", highest=True),
        "best_quality_per_dollar": pick(
            [m for m in rated if m["quality_per_dollar"]], "quality_per_dollar", highest=True
        ),
        "fastest_p95": pick(timed, "latency_p95_s", highest=False),
        "cheapest_per_request": pick(priced, "cost_per_request_usd", highest=False),
        "most_reliable": pick([m for m in models if m["requests"] >= 20], "error_rate", highest=False),
    }
