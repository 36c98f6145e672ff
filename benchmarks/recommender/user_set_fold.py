"""CPU cost of folding the per-day user bitmaps (rollup migration 6), two ways, per model call.

    python benchmarks/recommender/user_set_fold.py

``exporters.rollup.user_sets.fold_user_sets`` (the product: stored bitmaps of the batch's
days read back in one statement per table, OR-ed in Python, written back) against an
upsert calling an OR function registered on the connection (``ON CONFLICT … DO UPDATE SET
bitmap = nexus_bitor(bitmap, excluded.bitmap)``). Synthetic activity stage rows, made the
way the fold gets them: 20k users with Zipf-like activity (exponent 1.07), 6 teams x 3
projects, 10 features, 90 days, batches of 5,000 and 500 calls in time order, each grouped
by (day, user, team, project, feature). Each variant folds every batch into its own
in-memory database and commits; the figure is CPU seconds of that loop per call.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlite_utils

from exporters.rollup import user_sets

__all__ = ["main"]


def _bitor(a: bytes | None, b: bytes | None) -> bytes:
    return user_sets.bitmap_bytes(user_sets.bitmap_int(a) | user_sets.bitmap_int(b))


def _set_bits(ordinals: set[int]) -> bytes:
    buf = bytearray(max(ordinals) // 8 + 1)
    for o in ordinals:
        buf[o >> 3] |= 1 << (o & 7)
    return bytes(buf)


def fold_with_sql_function(conn: sqlite3.Connection, activity: Sequence[Sequence[Any]]) -> None:
    """The alternative: the same sets, OR-ed by an upsert through the registered ``nexus_bitor``."""
    first: dict[str, float] = {}
    for row in activity:
        if row[1] not in first or row[10] < first[row[1]]:
            first[row[1]] = row[10]
    ordinal = user_sets.user_ordinals(conn, first)
    active: dict[tuple, set[int]] = {}
    features: dict[tuple, set[int]] = {}
    for row in activity:
        day, user, team, project, feature = row[:5]
        active.setdefault((day, team or "", project or ""), set()).add(ordinal[user])
        if feature is not None:
            features.setdefault((day, team or "", project or "", feature), set()).add(ordinal[user])
    conn.executemany(
        "INSERT INTO active_users_day VALUES (?, ?, ?, ?) ON CONFLICT (day, team, project) "
        "DO UPDATE SET bitmap = nexus_bitor(bitmap, excluded.bitmap)",
        [(*k, _set_bits(v)) for k, v in active.items()],
    )
    conn.executemany(
        "INSERT INTO feature_users_day VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, team, project, feature) "
        "DO UPDATE SET bitmap = nexus_bitor(bitmap, excluded.bitmap)",
        [(*k, _set_bits(v)) for k, v in features.items()],
    )


def _batches(calls: int, per_batch: int, seed: int) -> list[list[tuple[Any, ...]]]:
    rng = random.Random(seed)
    users = [f"user-{i}" for i in range(20_000)]
    weights = [1 / (i + 1) ** 1.07 for i in range(len(users))]
    scopes = [
        (t, p)
        for t in ("search", "support", "research", "sales", "ml", "ops")
        for p in ("web", "api", "batch")
    ]
    features = [f"feature-{i}" for i in range(10)]
    start, n = 1767225600.0, calls // per_batch
    span = 90 * 86400 / n
    out = []
    for b in range(n):
        groups: dict[tuple[Any, ...], float] = {}
        for user in rng.choices(users, weights, k=per_batch):
            ts = start + (b + rng.random()) * span
            team, project = rng.choice(scopes)
            day = time.strftime("%Y-%m-%d", time.gmtime(ts))
            groups.setdefault((day, user, team, project, rng.choice(features)), ts)
        # (day, user, team, project, feature, requests, tokens in/out, cost, uses, first, last)
        out.append([(*k, 1, 0, 0, 0.0, 0, ts, ts) for k, ts in groups.items()])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=400_000, help="calls at 5,000 per batch (a quarter at 500)"
    )
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    variants: dict[str, Callable[[sqlite3.Connection, Sequence[Sequence[Any]]], None]] = {
        "product (read back by day, OR in Python)": user_sets.fold_user_sets,
        "upsert with a registered OR function": fold_with_sql_function,
    }
    for per_batch, calls in ((5000, args.calls), (500, args.calls // 4)):
        data = _batches(calls, per_batch, args.seed)
        for name, fold in variants.items():
            conn = sqlite3.connect(":memory:")
            conn.create_function("nexus_bitor", 2, _bitor, deterministic=True)
            user_sets.create_user_set_tables(sqlite_utils.Database(conn))
            t = time.process_time()
            for activity in data:
                fold(conn, activity)
                conn.commit()
            seconds = time.process_time() - t
            print(f"{per_batch:>5}-call batches  {name:<42} {seconds / calls * 1e6:6.2f} µs CPU per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
