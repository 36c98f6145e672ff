"""Build a realistic rollup fast: N events over D days, seeded, the way the collector's writer builds it.

    python benchmarks/recommender/generate.py --events 10000000 --days 90 --out /tmp/nexus-bench/rollup-10m.db

Rows are made with numpy a chunk at a time (~200k events), inserted with
``executemany`` through the product's own ``insert_sql`` and folded into the
aggregates with the product's ``fold_pending`` in the same
transaction: exactly what ``exporters.rollup.writer`` does per batch, so the
aggregates equal the sums of the raw rows. Only the batches are bigger.

"Events" counts rows across every raw table: ~83 % model calls, ~10 % feature
uses, ~5 % feedback (on real request ids), ~2 % session events and ~0.1 %
revenue. The traffic: 20k users with Zipf-like activity, 6 teams x 3 projects,
10 features each with its own model mix, 12 OpenAI/Anthropic models priced per
token (cache reads at their discounted price), a daily and weekly rhythm with a
slow growth trend, 3 % errors of a few types, 20 % routed calls with the
baseline model's cost, 30 % streamed calls with a time to first token,
lognormal latencies, prompt caching on about a quarter of the calls, and two
injected incidents (a runaway cost hour for one team, an OpenAI error burst)
for the anomaly detectors to find. Progress goes to stderr; the summary (one
JSON line) to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import math
import os
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exporters.rollup.aggregate import fold_pending, max_row_ids, set_fold_marks  # noqa: E402
from exporters.rollup.bands import (  # noqa: E402
    BAND_SUMS,
    BAND_TABLES,
    GLOBAL_BAND_TABLES,
    band_key,
    merge_sums_sql,
)
from exporters.rollup.connection import immediate_transaction, open_database  # noqa: E402
from exporters.rollup.migrations import migrate  # noqa: E402
from exporters.rollup.projections import PROJECTIONS, merge_projection_sql  # noqa: E402
from exporters.rollup.rows import insert_sql  # noqa: E402
from exporters.rollup.user_sets import (  # noqa: E402
    FEATURE_WEEK_TABLE,
    USER_SET_TABLES,
    backfill_feature_weeks,
    backfill_user_sets,
)
from nexus_otel.events import (  # noqa: E402
    FeatureUseEvent,
    FeedbackEvent,
    ModelCallEvent,
    RevenueEvent,
    SessionEvent,
)

__all__ = ["DEFAULT_END", "TEAMS", "generate"]

#: "now" at the end of the generated data: a fixed, deliberately unround instant (seeded runs agree).
DEFAULT_END = datetime(2026, 3, 31, 14, 37, 12, tzinfo=timezone.utc).timestamp()
TEAMS = ("search", "support", "sales", "marketing", "platform", "research")
FEATURES = (
    "chat",
    "search-answer",
    "summarize",
    "translate",
    "code-assist",
    "classify",
    "extract",
    "email-draft",
    "rag-qa",
    "embed-docs",
)
#: model -> (provider, $/M input, $/M output, $/M cache read, $/M cache write, median latency s, tokens/s)
MODELS: dict[str, tuple[str, float, float, float, float, float, float]] = {
    "gpt-4o": ("openai", 2.50, 10.00, 1.25, 0.0, 0.9, 90),
    "gpt-4o-mini": ("openai", 0.15, 0.60, 0.075, 0.0, 0.5, 140),
    "gpt-4.1": ("openai", 2.00, 8.00, 0.50, 0.0, 0.9, 95),
    "gpt-4.1-mini": ("openai", 0.40, 1.60, 0.10, 0.0, 0.5, 150),
    "gpt-4.1-nano": ("openai", 0.10, 0.40, 0.025, 0.0, 0.3, 220),
    "o3": ("openai", 2.00, 8.00, 0.50, 0.0, 3.5, 70),
    "o4-mini": ("openai", 1.10, 4.40, 0.275, 0.0, 2.0, 110),
    "text-embedding-3-small": ("openai", 0.02, 0.0, 0.0, 0.0, 0.12, 1e9),
    "claude-sonnet-4": ("anthropic", 3.00, 15.00, 0.30, 3.75, 1.2, 75),
    "claude-opus-4": ("anthropic", 15.00, 75.00, 1.50, 18.75, 2.2, 40),
    "claude-3-5-haiku": ("anthropic", 0.80, 4.00, 0.08, 1.00, 0.6, 120),
    "claude-haiku-4-5": ("anthropic", 1.00, 5.00, 0.10, 1.25, 0.5, 150),
}
MODEL_NAMES = tuple(MODELS)
#: routed call's model -> the baseline model the router would otherwise have used
ROUTES = {
    "gpt-4o-mini": "gpt-4o",
    "gpt-4.1-mini": "gpt-4.1",
    "gpt-4.1-nano": "gpt-4.1",
    "claude-3-5-haiku": "claude-sonnet-4",
    "claude-haiku-4-5": "claude-sonnet-4",
}
ERROR_TYPES = (
    "RateLimitError",
    "APITimeoutError",
    "InternalServerError",
    "BadRequestError",
    "APIConnectionError",
)
ERROR_P = (0.45, 0.2, 0.2, 0.1, 0.05)
N_USERS = 20_000
#: share of events per raw table
MIX = {"model_calls": 0.829, "feature_uses": 0.10, "feedback": 0.05, "sessions": 0.02, "revenue": 0.001}
CHUNK_EVENTS = 200_000


def _columns(cls: type) -> tuple[str, ...]:
    names = tuple("ts" if f.name == "timestamp" else f.name for f in dataclasses.fields(cls))
    return names if cls is ModelCallEvent else (*names, "event_key")


COLUMNS = {
    "model_calls": _columns(ModelCallEvent),
    "feature_uses": _columns(FeatureUseEvent),
    "feedback": _columns(FeedbackEvent),
    "revenue": _columns(RevenueEvent),
    "sessions": _columns(SessionEvent),
}
for _table, _cols in COLUMNS.items():  # the INSERT's column order is the product's, checked here
    assert f"({', '.join(_cols)})" in insert_sql(_table), _table


def _hour_weights(rng: np.random.Generator, start: float, hours: int) -> np.ndarray:
    t = start + 3600 * np.arange(hours)
    hour = (t // 3600) % 24
    weekday = ((t // 86400) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    daily = 0.18 + np.exp(-(((hour - 15.0) / 4.0) ** 2)) + 0.35 * np.exp(-(((hour - 8.0) / 2.5) ** 2))
    weekly = np.where(weekday >= 5, 0.45, 1.0)
    trend = 1.0 + 0.35 * np.arange(hours) / hours
    noise = rng.lognormal(0.0, 0.06, hours)
    w = daily * weekly * trend * noise
    return w / w.sum()


class _World:
    """Users, teams, projects and the feature/model preferences, fixed by the seed."""

    def __init__(self, rng: np.random.Generator) -> None:
        ranks = rng.permutation(N_USERS) + 1
        p = 1.0 / ranks**1.07
        self.user_p = p / p.sum()
        self.user_ids = np.array([f"user-{i:05d}" for i in range(N_USERS)], dtype=object)
        team_p = np.array([0.30, 0.22, 0.14, 0.10, 0.14, 0.10])
        self.user_team = rng.choice(len(TEAMS), N_USERS, p=team_p)
        self.user_project = rng.choice(3, N_USERS, p=[0.6, 0.3, 0.1])
        self.projects = np.array(
            [[f"{t}-{p}" for p in ("core", "labs", "internal")] for t in TEAMS], dtype=object
        )
        self.teams = np.array(TEAMS, dtype=object)
        self.features = np.array(FEATURES, dtype=object)
        # each team leans on a few features
        self.team_feature_p = rng.dirichlet(np.full(len(FEATURES), 0.6), len(TEAMS))
        # each feature has its own model mix (embed-docs only embeds; nothing else does)
        emb = MODEL_NAMES.index("text-embedding-3-small")
        mix = rng.dirichlet(np.full(len(MODEL_NAMES), 0.5), len(FEATURES))
        mix[:, emb] = 0.0
        mix[FEATURES.index("embed-docs")] = 0.0
        mix[FEATURES.index("embed-docs"), emb] = 1.0
        self.feature_model_p = mix / mix.sum(axis=1, keepdims=True)
        self.model_names = np.array(MODEL_NAMES, dtype=object)
        self.providers = np.array([MODELS[m][0] for m in MODEL_NAMES], dtype=object)
        self.servers = np.array([f"api.{MODELS[m][0]}.com" for m in MODEL_NAMES], dtype=object)
        self.response_models = np.array(
            [m if m.startswith("claude") else f"{m}-2025-04-14" for m in MODEL_NAMES], dtype=object
        )
        self.operations = np.array(
            ["embeddings" if m.startswith("text-embedding") else "chat" for m in MODEL_NAMES], dtype=object
        )
        self.price = np.array([MODELS[m][1:5] for m in MODEL_NAMES]) / 1e6
        self.latency_median = np.array([MODELS[m][5] for m in MODEL_NAMES])
        self.tokens_per_s = np.array([MODELS[m][6] for m in MODEL_NAMES])
        self.reasoning = np.array([m in ("o3", "o4-mini") for m in MODEL_NAMES])
        self.route_to = {MODEL_NAMES.index(a): MODEL_NAMES.index(b) for a, b in ROUTES.items()}
        self.routable = np.array(sorted(self.route_to))


def _choice_rows(rng: np.random.Generator, groups: np.ndarray, p: np.ndarray) -> np.ndarray:
    """For each row, a category drawn from ``p[group]`` (vectorised inverse CDF)."""
    cdf = np.cumsum(p, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(len(groups))
    return (u[:, None] > cdf[groups]).sum(axis=1)


def _nullable(values: np.ndarray, mask: np.ndarray) -> list:
    out = values.tolist()
    for i in np.flatnonzero(mask).tolist():
        out[i] = None
    return out


def _calls(  # noqa: PLR0917 - internal row builder, called in one place
    rng: np.random.Generator,
    w: _World,
    ts: np.ndarray,
    first_id: int,
    tag: str,
    incidents: dict[str, tuple[float, float]],
) -> tuple[list[tuple], dict[str, np.ndarray]]:
    n = len(ts)
    users = rng.choice(N_USERS, n, p=w.user_p)
    anonymous = rng.random(n) < 0.03  # batch jobs without a user
    team = w.user_team[users]
    project = w.user_project[users]
    feature = _choice_rows(rng, team, w.team_feature_p)
    model = _choice_rows(rng, feature, w.feature_model_p)
    # 20 % routed: a chat call routed down to a cheaper model from its family's big one
    routed = (rng.random(n) < 0.22) & (feature != FEATURES.index("embed-docs"))
    model[routed] = rng.choice(w.routable, int(routed.sum()))
    baseline = model.copy()
    baseline[routed] = np.vectorize(w.route_to.get)(model[routed]) if routed.any() else baseline[routed]
    is_embed = w.operations[model] == "embeddings"

    input_tokens = np.maximum(8, rng.lognormal(math.log(1100), 0.9, n)).astype(np.int64)
    output_tokens = np.where(is_embed, 0, np.maximum(1, rng.lognormal(math.log(260), 0.8, n))).astype(
        np.int64
    )
    runaway = (
        (ts >= incidents["runaway"][0]) & (ts < incidents["runaway"][1]) & (team == TEAMS.index("research"))
    )
    input_tokens[runaway] *= 12
    output_tokens[runaway] *= 4
    cached = (rng.random(n) < 0.27) & ~is_embed
    cache_read = np.where(cached, (input_tokens * rng.uniform(0.3, 0.9, n)).astype(np.int64), 0)
    cache_write = np.where(
        (w.providers[model] == "anthropic") & (rng.random(n) < 0.05), (input_tokens * 0.2).astype(np.int64), 0
    )
    cache_write = np.minimum(cache_write, input_tokens - cache_read)
    reasoning = np.where(w.reasoning[model], (output_tokens * rng.uniform(0.3, 0.8, n)).astype(np.int64), 0)

    outage = (ts >= incidents["outage"][0]) & (ts < incidents["outage"][1]) & (w.providers[model] == "openai")
    error = rng.random(n) < np.where(outage, 0.40, 0.03)
    error_type = w_error_types[rng.choice(len(ERROR_TYPES), n, p=ERROR_P)]
    output_tokens[error] = 0
    reasoning[error] = 0
    cache_read[error] = 0
    cache_write[error] = 0

    def cost(m: np.ndarray) -> np.ndarray:
        p = w.price[m]
        plain = input_tokens - cache_read - cache_write
        return plain * p[:, 0] + output_tokens * p[:, 1] + cache_read * p[:, 2] + cache_write * p[:, 3]

    cost_usd = cost(model)
    baseline_cost = cost(baseline)

    latency = rng.lognormal(np.log(w.latency_median[model]), 0.45) + output_tokens / w.tokens_per_s[model]
    latency[error] = rng.lognormal(math.log(1.5), 1.0, int(error.sum()))
    streamed = (rng.random(n) < 0.30) & ~is_embed
    ttft = latency * rng.uniform(0.05, 0.35, n)
    confidence = rng.uniform(0.55, 0.99, n).round(3)

    ids = np.arange(first_id, first_id + n)
    request_ids = [f"req-{tag}-{i:010x}" for i in ids.tolist()]
    session = (users * 1000 + (ts // 7200).astype(np.int64) % 1000).tolist()
    session_ids = [f"s-{s:08x}" for s in session]
    user_list = _nullable(w.user_ids[users], anonymous)
    session_list = _nullable(np.array(session_ids, dtype=object), anonymous)
    team_names = w.teams[team]
    project_names = w.projects[team, project]
    feature_names = w.features[feature]
    model_names = w.model_names[model]
    provider_names = w.providers[model]
    columns = {
        "ts": ts.tolist(),
        "user_id": user_list,
        "session_id": session_list,
        "team": team_names.tolist(),
        "project": project_names.tolist(),
        "feature": feature_names.tolist(),
        "request_id": request_ids,
        "model": model_names.tolist(),
        "response_model": w.response_models[model].tolist(),
        "provider": provider_names.tolist(),
        "operation": w.operations[model].tolist(),
        "server_address": w.servers[model].tolist(),
        "input_tokens": input_tokens.tolist(),
        "output_tokens": output_tokens.tolist(),
        "cache_read_tokens": cache_read.tolist(),
        "cache_write_tokens": cache_write.tolist(),
        "reasoning_tokens": reasoning.tolist(),
        "cost_usd": cost_usd.tolist(),
        "baseline_cost_usd": _nullable(baseline_cost, ~routed),
        "priced": [1] * n,
        "latency_s": latency.tolist(),
        "ttft_s": _nullable(ttft, ~streamed | error),
        "streamed": streamed.astype(np.int64).tolist(),
        "outcome": np.where(error, "error", "success").astype(object).tolist(),
        "error_type": _nullable(error_type, ~error),
        "routed": routed.astype(np.int64).tolist(),
        "routed_from": _nullable(w.model_names[baseline], ~routed),
        "router_confidence": _nullable(confidence, ~routed),
    }
    rows = list(zip(*(columns[c] for c in COLUMNS["model_calls"]), strict=True))
    keep = {
        "ts": ts,
        "users": users,
        "anonymous": anonymous,
        "team": team,
        "project": project,
        "feature": feature,
        "model": model,
        "request_ids": np.array(request_ids, dtype=object),
        "session_ids": np.array(session_ids, dtype=object),
        "error": error,
    }
    return rows, keep


w_error_types = np.array(ERROR_TYPES, dtype=object)


def _key(table: str, tag: str, i: int) -> str:
    return hashlib.sha256(f"{table}:{tag}:{i}".encode()).hexdigest()


def _product_events(  # noqa: PLR0917 - internal row builder, called in one place
    rng: np.random.Generator,
    w: _World,
    calls: dict[str, np.ndarray],
    counts: dict[str, int],
    serial: int,
    tag: str,
    lo: float,
    end: float,
) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}

    with_user = np.flatnonzero(~calls["anonymous"])
    rated = np.flatnonzero(~calls["anonymous"] & ~calls["error"])

    def pick(k: int, among: np.ndarray | None = None) -> np.ndarray:
        among = with_user if among is None else among
        return among[rng.integers(0, len(among), k)]

    def rows(prefix: str, idx: np.ndarray, ts: np.ndarray, *columns: list) -> list[tuple]:
        """Rows of the events on calls ``idx``: time, the call's user, session, team and project,
        ``columns``, then a unique key."""
        nonlocal serial
        team = calls["team"][idx]
        keys = [_key(prefix, tag, serial + i) for i in range(len(idx))]
        serial += len(idx)
        return list(
            zip(
                ts.tolist(),
                w.user_ids[calls["users"][idx]].tolist(),
                calls["session_ids"][idx].tolist(),
                w.teams[team].tolist(),
                w.projects[team, calls["project"][idx]].tolist(),
                *columns,
                keys,
                strict=True,
            )
        )

    # feature uses: the call's user using a feature (from their team's mix) a few times
    idx = pick(counts["feature_uses"])
    k = len(idx)
    ts = np.clip(calls["ts"][idx] + rng.uniform(-1800, 1800, k), lo, end - 0.001)
    feats = _choice_rows(rng, calls["team"][idx], w.team_feature_p)
    out["feature_uses"] = rows("fu", idx, ts, w.features[feats].tolist(), rng.integers(1, 6, k).tolist())
    # feedback on real calls (successful ones mostly), a little after the call
    idx = pick(counts["feedback"], rated)
    k = len(idx)
    ts = np.minimum(calls["ts"][idx] + rng.lognormal(math.log(45), 1.0, k), end - 0.001)
    model = calls["model"][idx]
    score = np.clip(rng.beta(5, 1.6, k) - 0.1 * (model == MODEL_NAMES.index("gpt-4.1-nano")), 0, 1).round(2)
    comment = np.where(rng.random(k) < 0.2, rng.integers(5, 400, k), 0)
    out["feedback"] = rows(
        "fb",
        idx,
        ts,
        w.features[calls["feature"][idx]].tolist(),
        calls["request_ids"][idx].tolist(),
        score.tolist(),
        w.model_names[model].tolist(),
        w.providers[model].tolist(),
        _nullable(comment, comment == 0),
    )
    # session starts and ends
    idx = pick(counts["sessions"])
    k = len(idx)
    ended = rng.random(k) < 0.5
    out["sessions"] = rows(
        "se",
        idx,
        calls["ts"][idx],
        [None] * k,
        np.where(ended, "ended", "started").astype(object).tolist(),
        _nullable(rng.lognormal(math.log(900), 1.0, k).round(1), ~ended),
    )
    # revenue: rare, from the heavier users
    idx = pick(counts["revenue"])
    k = len(idx)
    plan = rng.choice(3, k, p=[0.7, 0.25, 0.05])
    out["revenue"] = rows(
        "rv",
        idx,
        calls["ts"][idx],
        [None] * k,
        np.array([20.0, 60.0, 480.0])[plan].tolist(),
        np.array(["pro", "team", "enterprise"], dtype=object)[plan].tolist(),
    )
    return out


def _plan(events: int, days: int, seed: int, end: float) -> tuple[_World, float, float, np.ndarray, dict]:
    """What every part agrees on: the world, the hours and their event counts, the incidents."""
    rng = np.random.default_rng(seed)
    world = _World(rng)
    start = end - days * 86400
    first_hour = math.floor(start / 3600) * 3600
    hours = math.ceil((end - first_hour) / 3600)
    per_hour = rng.multinomial(events, _hour_weights(rng, first_hour, hours))
    runaway = math.floor((end - 10 * 86400) / 3600) * 3600  # one team's runaway hour, 10 days back
    outage = math.floor((end - 4 * 86400) / 3600) * 3600  # an OpenAI error burst, 4 days back
    incidents = {"runaway": (runaway, runaway + 3600), "outage": (outage, outage + 7200)}
    return world, start, first_hour, per_hour, incidents


def _build_part(job: dict) -> dict:
    """Generate hours [h0, h1) of the plan into ``job['out']`` (a fresh, migrated rollup)."""
    world, start, first_hour, per_hour, incidents = _plan(job["events"], job["days"], job["seed"], job["end"])
    part, h0, h1, end, chunk = job["part"], job["h0"], job["h1"], job["end"], job["chunk"]
    lo, hi = max(start, first_hour + 3600 * h0), min(end, first_hour + 3600 * h1)
    rng = np.random.default_rng([job["seed"], part + 1])
    tag = f"{job['seed']:04x}{part:x}"
    out = Path(job["out"])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    db = open_database(out, synchronous="NORMAL")
    migrate(db)
    conn = db.conn
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB page cache for the generator's own connection
    conn.execute("PRAGMA temp_store=MEMORY")
    sql = {table: insert_sql(table) for table in COLUMNS}
    totals = dict.fromkeys(COLUMNS, 0)
    call_id = serial = 0
    t_insert = t_fold = t_make = 0.0
    t0 = time.perf_counter()
    hour = h0
    while hour < h1:
        # whole hours up to ~chunk events, timestamps sorted (ids follow time, as in production)
        stop, n = hour, 0
        while stop < h1 and (n == 0 or n + per_hour[stop] <= chunk):
            n += int(per_hour[stop])
            stop += 1
        m = time.perf_counter()
        offsets = np.repeat(first_hour + 3600.0 * np.arange(hour, stop), per_hour[hour:stop])
        low, high = np.maximum(offsets, lo), np.minimum(offsets + 3600.0, hi)  # first/last hour are partial
        ts = np.sort(low + rng.random(len(offsets)) * (high - low))
        hour = stop
        if len(ts) == 0:
            continue
        kinds = rng.multinomial(len(ts), list(MIX.values()))
        by_kind = dict(zip(MIX, kinds.tolist(), strict=True))
        call_mask = np.zeros(len(ts), dtype=bool)
        call_mask[rng.choice(len(ts), by_kind["model_calls"], replace=False)] = True
        call_rows, kept = _calls(rng, world, ts[call_mask], call_id, tag, incidents)
        call_id += len(call_rows)
        product = _product_events(rng, world, kept, by_kind, serial, tag, lo, hi)
        serial += sum(len(v) for v in product.values())
        t_make += time.perf_counter() - m
        with immediate_transaction(db) as c:  # what exporters.rollup.writer does per batch
            a = time.perf_counter()
            c.executemany(sql["model_calls"], call_rows)
            for table, rows in product.items():
                c.executemany(sql[table], rows)
            b = time.perf_counter()
            fold_pending(c)
            t_insert += b - a
            t_fold += time.perf_counter() - b
        totals["model_calls"] += len(call_rows)
        for table, rows in product.items():
            totals[table] += len(rows)
        if job["progress"]:
            done, el = sum(totals.values()), time.perf_counter() - t0
            print(
                f"  part {part}: {done:>11,} events  {done / el:>8,.0f} ev/s  (make rows {t_make:.0f} s, "
                f"insert {t_insert:.0f} s, fold {t_fold:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"out": str(out), "rows": totals, "make": t_make, "insert": t_insert, "fold": t_fold}


#: tables copied from a later part into the first, in this order (ids are reassigned in time order)
_MERGE_TABLES = (
    *COLUMNS,
    "agg_minute",
    "agg_hour",
    "agg_day",
    "user_day",
    "user_day_features",
    "user_team_day",
    "user_team_day_features",
    "feature_use_day",
)


def _merge_call_bands(c: sqlite3.Connection, feedback_offset: int) -> None:
    """Add a later part's call band rows: days are disjoint, a 7-day week may span the split."""
    for table in (*BAND_TABLES, *GLOBAL_BAND_TABLES):
        key = band_key(table)
        columns = ", ".join((*key, *(name for name, _ in BAND_SUMS)))
        c.execute(
            f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM part.{table} WHERE true "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {merge_sums_sql(table)}"
        )
    # feedback still waiting for its call names the feedback row by id, which the merge moved
    c.execute(
        "INSERT INTO main.call_band_pending (feedback_id, request_id) "
        "SELECT feedback_id + ?, request_id FROM part.call_band_pending",
        (feedback_offset,),
    )


def _merge_projections(c: sqlite3.Connection) -> None:
    """Add a later part's projection rows: minutes, hours and days are disjoint, a week may span the split."""
    for projection in PROJECTIONS:
        columns = ", ".join((*projection.key, *projection.sums))
        for width in projection.widths:
            table = projection.table(width)
            c.execute(
                f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM part.{table} WHERE true "
                f"ON CONFLICT ({', '.join(projection.key)}) DO UPDATE SET "
                f"{merge_projection_sql(projection, width)}"
            )


def _merge(out: Path, part: Path) -> None:
    """Append a later part's rows: raw rows get the next ids, aggregate keys cannot collide (whole UTC days)."""
    db = open_database(out, synchronous="NORMAL")
    conn = db.conn
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("ATTACH ? AS part", (str(part),))
    with immediate_transaction(db) as c:
        feedback_offset = max_row_ids(c).feedback  # the part's feedback ids move up by this much
        for table in _MERGE_TABLES:
            cols = ", ".join(r[1] for r in c.execute(f"PRAGMA main.table_info({table})") if r[1] != "id")
            c.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM part.{table} ORDER BY rowid")
        # WITHOUT ROWID (no rowid to order by); hours do not span the split at a UTC midnight
        c.execute("INSERT INTO main.team_hour SELECT * FROM part.team_hour")
        for table in ("error_day", "feedback_day"):  # days do not span it either
            c.execute(f"INSERT INTO main.{table} SELECT * FROM part.{table}")
        c.execute(  # a user's ceiling spans every day: add the part's
            "INSERT INTO main.user_cost_ceiling SELECT * FROM part.user_cost_ceiling WHERE true "
            "ON CONFLICT (team, project, user_id) DO UPDATE SET ceiling_usd = ceiling_usd + excluded.ceiling_usd"
        )
        _merge_projections(c)
        _merge_call_bands(c, feedback_offset)
        # each part numbered its own users from 0: number the merged file's users again, from the
        # merged user_team_day tables (as migration 6 does)
        for table in (*USER_SET_TABLES, FEATURE_WEEK_TABLE):
            c.execute(f"DELETE FROM main.{table}")
        backfill_user_sets(c)
        backfill_feature_weeks(c)
        set_fold_marks(c, max_row_ids(c))  # both parts were folded as they were written
    conn.execute("DETACH part")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def generate(
    out: str | os.PathLike[str],
    *,
    events: int,
    days: int,
    seed: int = 7,
    end: float = DEFAULT_END,
    chunk: int = CHUNK_EVENTS,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, object]:
    """Write a fresh rollup at ``out``; returns a summary (row counts, seconds, events/s).

    With ``workers`` > 1 the days are split at UTC midnights into that many
    contiguous parts, built in parallel processes (each one exactly as the
    writer would), then the later parts are appended to the first in time
    order. Aggregates never span a part boundary (day buckets are whole UTC
    days, and product events are kept inside their part), so the merged file
    equals the one a single writer would have built from the same rows.
    """
    from concurrent.futures import ProcessPoolExecutor

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    t0 = time.perf_counter()
    _world, start, first_hour, per_hour, incidents = _plan(events, days, seed, end)
    hours = len(per_hour)
    # split at UTC midnights so each part holds about the same number of events
    cum = np.cumsum(per_hour)
    bounds = [0]
    for k in range(1, workers):
        h = int(np.searchsorted(cum, cum[-1] * k / workers))
        h = round((first_hour + 3600 * h) / 86400) * 86400
        h = int((h - first_hour) // 3600)
        if bounds[-1] < h < hours:
            bounds.append(h)
    bounds.append(hours)
    jobs = [
        {
            "part": i,
            "h0": h0,
            "h1": h1,
            "out": str(out) if i == 0 else f"{out}.part{i}",
            "events": events,
            "days": days,
            "seed": seed,
            "end": end,
            "chunk": chunk,
            "progress": progress,
        }
        for i, (h0, h1) in enumerate(itertools.pairwise(bounds))
    ]
    if len(jobs) == 1:
        results = [_build_part(jobs[0])]
    else:
        with ProcessPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(_build_part, jobs))
    t_parts = time.perf_counter() - t0
    for job in jobs[1:]:
        if progress:
            print(f"  merging {job['out']} ...", file=sys.stderr, flush=True)
        _merge(out, Path(job["out"]))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{job['out']}{suffix}").unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    totals = {t: sum(r["rows"][t] for r in results) for t in COLUMNS}
    done = sum(totals.values())
    summary = {
        "path": str(out),
        "events": done,
        "rows": totals,
        "days": days,
        "seed": seed,
        "workers": len(jobs),
        "start": start,
        "end": end,
        "incidents": {k: list(v) for k, v in incidents.items()},
        "seconds": round(seconds, 1),
        "events_per_s": round(done / seconds),
        "seconds_parts": round(t_parts, 1),
        "seconds_merge": round(seconds - t_parts, 1),
        "cpu_seconds_make_rows": round(sum(r["make"] for r in results), 1),
        "cpu_seconds_insert": round(sum(r["insert"] for r in results), 1),
        "cpu_seconds_fold": round(sum(r["fold"] for r in results), 1),
        "file_bytes": out.stat().st_size,
    }
    # what the benchmark needs to know about the file ("now", the incidents), beside it
    Path(f"{out}.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=CHUNK_EVENTS, help="events per transaction")
    parser.add_argument("--workers", type=int, default=2, help="parallel parts, merged at the end")
    parser.add_argument("--out", default="/tmp/nexus-bench/rollup-10m.db")
    args = parser.parse_args(argv)
    summary = generate(
        args.out, events=args.events, days=args.days, seed=args.seed, chunk=args.chunk, workers=args.workers
    )
    print(
        f"generated {summary['events']:,} events in {summary['seconds']} s = {summary['events_per_s']:,} events/s "
        f"-> {summary['path']} ({summary['file_bytes'] / 1e9:.2f} GB)",
        file=sys.stderr,
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
