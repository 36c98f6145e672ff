"""Recommendations that weigh cost against quality: cheaper models and prompt caching.

(Router thresholds, the third such kind, are in :mod:`.recommend_router`.)

They read calls by prompt-size band and ``feedback`` joined to the rated call
(:mod:`.call_facts`: the rollup's band aggregate for whole days, raw calls for the
rest). Every filter of the query is applied to the call (its team, project,
model, provider, feature and user), because feedback rows often carry none of
these themselves: the call is what the caller's key is scoped by. Feedback
counts as evidence for the period in which the rated call was made.

Each check stays silent unless it has enough evidence (feedback counts, call
counts) and a clear difference, so ordinary traffic yields nothing:

``cheaper_model``
    per feature, over non-routed calls with <= :data:`SHORT_PROMPT_TOKENS` input
    tokens: a model rated no more than :data:`QUALITY_TOLERANCE` below a
    pricier one, with >= :data:`MIN_FEEDBACK` ratings each, that would bill the
    pricier model's short calls at least 10% less (its price-table rates on the
    same tokens, else its observed cost per token).
``prompt_caching``
    per feature+model: >= :data:`CACHE_MIN_CALLS` calls averaging >= 1024 input
    tokens, a 5th-percentile prompt >= 1024 tokens and >= half the mean (a
    shared prefix), < 10% of input read from cache, and a cache-read price below
    the input price. Saving: the p5 prefix on every call at input minus
    cache-read price (cache writes, paid once per cache lifetime, are ignored).
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from nexus_otel.pricing import PriceFileError, PriceTable, get_default_table

from ..params import Query
from ..store.reader import Rollup
from ..store.totals import grouped
from .call_facts import SHORT_PROMPT_TOKENS, CallFacts, call_facts, calls_where

__all__ = [
    "CACHE_MAX_SHARE",
    "CACHE_MIN_CALLS",
    "CACHE_MIN_PREFIX",
    "MIN_FEEDBACK",
    "QUALITY_TOLERANCE",
    "SHORT_PROMPT_TOKENS",
    "CallFacts",
    "call_facts",
    "calls_where",
    "cheaper_model",
    "price_table",
    "prompt_caching",
]

# SHORT_PROMPT_TOKENS (a prompt at most this long is short: small models cope with short prompts
# best) is the prompt-size band boundary of the rollup's call_band_day, so whole days are exact.
#: Ratings needed on each side of a quality comparison before it is trusted.
MIN_FEEDBACK = 20
#: A cheaper model (or a router band) may score this much lower and still count as "as good".
QUALITY_TOLERANCE = 0.05
#: Providers only cache prefixes of at least this many tokens (OpenAI and Anthropic: 1024).
CACHE_MIN_PREFIX = 1024
#: Calls of one feature+model needed before its prompt sizes say anything.
CACHE_MIN_CALLS = 100
#: Cache reads above this share of input tokens mean caching is already in use.
CACHE_MAX_SHARE = 0.10
#: The 5th-percentile prompt must be at least this share of the mean for a shared prefix.
CACHE_STEADY_RATIO = 0.5

Row = dict[str, Any]
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _load_table(files: tuple[str, ...]) -> PriceTable:
    return PriceTable.load(*files)


def price_table(settings: dict[str, Any]) -> PriceTable:
    """The configured prices (``price_files`` over the built-in table), loaded once per file list."""
    files = tuple(settings.get("price_files") or ())
    if not files:
        return get_default_table()
    try:
        return _load_table(files)
    except (OSError, PriceFileError) as exc:
        # a broken override file should not take recommendations down: estimate with the built-in prices
        log.warning("price files %s not read (%s); using the built-in prices", files, exc)
        return get_default_table()


def _rates(table: PriceTable, provider: str, model: str, at: float) -> tuple[float, float, float] | None:
    """(input, cache_read, output) USD per token, or None when the model has no price."""
    price = table.lookup(provider=provider, model=model, at=datetime.fromtimestamp(at, timezone.utc))
    if price is None:
        return None
    r = price.rates
    return float(r.input) / 1e6, float(r.effective_cache_read) / 1e6, float(r.output) / 1e6


def cheaper_model(
    rollup: Rollup, query: Query, table: PriceTable, per_month: float, *, facts: CallFacts | None = None
) -> list[dict[str, Any]]:
    """Per feature: a model rated as well as a pricier one on short prompts, priced on the pricier one's
    tokens (the same calls, billed at the cheaper model's rates).

    Routed calls are left out: the router picked them for being easy, so their
    ratings flatter the cheap model (the router check looks at them instead).
    """
    facts = call_facts(rollup, query) if facts is None else facts
    scores = {(r["feature"], r["model"], r["provider"]): r for r in facts.short_feedback}
    usage = facts.short_usage
    by_feature: dict[str, list[Row]] = defaultdict(list)
    for row in usage:
        rated = scores.get((row["feature"], row["model"], row["provider"]))
        if rated and rated["n"] >= MIN_FEEDBACK:
            by_feature[row["feature"]].append({**row, "feedback": rated["n"], "score": rated["score"]})
    out = []
    at = query.range.end
    for feature, models in sorted(by_feature.items()):
        for pricey in models:
            if pricey["calls"] != pricey["priced"] or pricey["cost"] <= 0:
                continue
            best = None
            for cheap in models:
                if cheap is pricey or cheap["score"] < pricey["score"] - QUALITY_TOLERANCE:
                    continue
                rates = _rates(table, cheap["provider"], cheap["model"], at)
                if rates is not None:
                    inp, cached, outp = rates
                    on_cheap = (
                        (pricey["input"] - pricey["cache_read"]) * inp
                        + pricey["cache_read"] * cached
                        + pricey["output"] * outp
                    )
                    how = "price table"
                elif cheap["priced"] == cheap["calls"] and cheap["input"] + cheap["output"] > 0:
                    per_token = cheap["cost"] / (cheap["input"] + cheap["output"])
                    on_cheap = per_token * (pricey["input"] + pricey["output"])
                    how = "observed cost per token"
                else:
                    continue
                saved = pricey["cost"] - on_cheap
                # under 10% is within what prompt-length differences between the models explain
                if saved > 0.1 * pricey["cost"] and (best is None or saved > best[0]):
                    best = (saved, cheap, on_cheap, how)
            if best is None:
                continue
            saved, cheap, on_cheap, how = best
            n = pricey["calls"]
            out.append(
                {
                    "kind": "cheaper_model",
                    "title": (
                        f"Use {cheap['model']} instead of {pricey['model']} for short '{feature}' prompts "
                        f"(<= {SHORT_PROMPT_TOKENS} input tokens): rated {cheap['score']:.2f} vs "
                        f"{pricey['score']:.2f}"
                    ),
                    "target": f"feature:{feature}",
                    "savings": saved * per_month,
                    "impact": {
                        "monthly_usd": saved * per_month,
                        "requests_per_month": n * per_month,
                        "quality_delta": cheap["score"] - pricey["score"],
                    },
                    "action": (
                        f"Route '{feature}' calls with at most {SHORT_PROMPT_TOKENS} input tokens from "
                        f"{pricey['provider']}/{pricey['model']} to {cheap['provider']}/{cheap['model']}, "
                        "and keep watching their feedback"
                    ),
                    "evidence": {
                        "short_prompt_max_input_tokens": SHORT_PROMPT_TOKENS,
                        "expensive_model": pricey["model"],
                        "cheaper_model": cheap["model"],
                        "expensive_feedback": {"count": pricey["feedback"], "mean_score": pricey["score"]},
                        "cheaper_feedback": {"count": cheap["feedback"], "mean_score": cheap["score"]},
                        "expensive_short_calls": n,
                        "expensive_cost_per_call_usd": pricey["cost"] / n,
                        "cheaper_cost_per_call_usd": on_cheap / n,
                        "cheaper_cost_estimated_from": how,
                        "tolerance": QUALITY_TOLERANCE,
                    },
                }
            )
    return out


def prompt_caching(rollup: Rollup, query: Query, table: PriceTable, per_month: float) -> list[dict[str, Any]]:
    """Large prompts of steady size hardly ever read from the cache, on a model with cheaper cache reads.

    A repeated prefix (system prompt, instructions, documents) cannot be longer
    than the shortest prompts, so the 5th percentile of the prompt size is the
    conservative estimate of the cacheable part of every call.
    """
    sql, params = calls_where(query)
    # the sums come from the aggregates (exact, and ~15x cheaper than the raw calls at scale);
    # only the prompt-size percentile needs the raw calls, and only for candidate groups
    groups = []
    for row in grouped(
        rollup, query, ("feature", "model", "provider", "outcome"), sums=("input_tokens", "cache_read_tokens")
    ):
        calls = int(row["requests"])
        if row["feature"] and row["outcome"] == "success" and calls >= CACHE_MIN_CALLS:
            mean_input = row["input_tokens"] / calls
            if mean_input >= CACHE_MIN_PREFIX:
                groups.append(
                    {
                        **row,
                        "calls": calls,
                        "mean_input": mean_input,
                        "input": row["input_tokens"],
                        "cache_read": row["cache_read_tokens"],
                    }
                )
    out = []
    for g in groups:
        share = g["cache_read"] / g["input"] if g["input"] else 0.0
        rates = _rates(table, g["provider"], g["model"], query.range.end)
        if share >= CACHE_MAX_SHARE or rates is None or rates[1] >= rates[0]:
            continue
        calls = int(g["calls"])
        p5 = rollup.execute(
            f"SELECT c.input_tokens FROM model_calls c WHERE {sql} AND c.feature = ? AND c.model = ? "
            "AND c.provider = ? AND c.outcome = 'success' ORDER BY c.input_tokens LIMIT 1 OFFSET ?",
            [*params, g["feature"], g["model"], g["provider"], calls * 5 // 100],
        ).fetchone()[0]
        if p5 < CACHE_MIN_PREFIX or p5 < CACHE_STEADY_RATIO * g["mean_input"]:
            continue
        cacheable = max(0.0, p5 * calls - g["cache_read"])
        saved = cacheable * (rates[0] - rates[1])
        if saved <= 0:
            continue
        out.append(
            {
                "kind": "prompt_caching",
                "title": (
                    f"Cache the ~{int(p5)}-token prompt prefix of '{g['feature']}' on {g['model']} "
                    f"({share:.0%} of input tokens read from cache now)"
                ),
                "target": f"feature:{g['feature']}",
                "savings": saved * per_month,
                "impact": {
                    "monthly_usd": saved * per_month,
                    "requests_per_month": calls * per_month,
                    "cacheable_tokens_per_month": cacheable * per_month,
                },
                "action": (
                    f"Put the fixed part of '{g['feature']}' prompts first and enable prompt caching on "
                    f"{g['provider']}/{g['model']} (cache_control breakpoints on Anthropic; a stable prefix "
                    "of >= 1024 tokens on OpenAI)"
                ),
                "evidence": {
                    "model": g["model"],
                    "provider": g["provider"],
                    "calls": calls,
                    "mean_input_tokens": g["mean_input"],
                    "p5_input_tokens": p5,
                    "estimated_prefix_tokens": p5,
                    "cache_read_share": share,
                    "input_usd_per_mtok": rates[0] * 1e6,
                    "cache_read_usd_per_mtok": rates[1] * 1e6,
                },
            }
        )
    return out
