"""2. Rollup commit rows/s: the rollup writer against plain ``sqlite3`` ``executemany`` of the same rows."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from common import log, median
from workload import model_call_events

_LEGS = ("writer", "writer_rows", "writer_deferred", "executemany", "indexed_insert")


def _write_events(writer: Any, events: Any) -> int:
    return writer.write(events).inserted


def _write_rows(writer: Any, rows: Any) -> int:
    return writer.write_rows(rows).inserted


def _write_rows_deferred(writer: Any, rows: Any) -> int:
    return writer.write_rows(rows, defer_fold=True).inserted


def _executemany(conn: sqlite3.Connection, statement_rows: tuple[str, list[Any]]) -> int:
    statement, rows = statement_rows
    conn.execute("BEGIN IMMEDIATE")
    before = conn.total_changes
    conn.executemany(statement, rows)
    conn.execute("COMMIT")
    return conn.total_changes - before


def rollup_vs_executemany(workdir: Path, *, events: int, batch: int, repeats: int) -> dict[str, Any]:
    """Five legs, batch by batch interleaved so all see the same machine noise.

    ``writer``: ``RollupWriter.write`` of event objects (``prepare_rows`` included);
    ``writer_rows``: ``RollupWriter.write_rows`` of the ready rows, which is what the
    committer process runs (the collector reads model calls straight into rows);
    ``writer_deferred``: the same with ``defer_fold=True``, as the committer under load (rows
    folded every ``fold_rows``; the last fold, at the end, is timed too);
    ``executemany``: plain ``sqlite3`` of the same ready rows into a bare table;
    ``indexed_insert``: the raw ``INSERT OR IGNORE`` alone into a migrated ``model_calls``.
    """
    from exporters.rollup import RollupWriter
    from exporters.rollup.rows import PreparedRows, insert_sql, prepare_rows

    insert = insert_sql("model_calls")
    columns = insert.split("(", 1)[1].split(")", 1)[0]
    bare_insert = insert.replace("INSERT OR IGNORE INTO model_calls", "INSERT INTO bare")
    runs = []
    for r in range(repeats):
        run_dir = Path(tempfile.mkdtemp(prefix="rollup-", dir=workdir))
        writer = RollupWriter(run_dir / "rollup.db", retention_days=None)
        rows_writer = RollupWriter(run_dir / "rollup-rows.db", retention_days=None)
        deferred_writer = RollupWriter(run_dir / "rollup-deferred.db", retention_days=None)
        base = sqlite3.connect(run_dir / "bare.db", isolation_level=None)
        base.execute("PRAGMA journal_mode=WAL")
        base.execute("PRAGMA synchronous=FULL")
        base.execute(f"CREATE TABLE bare (id INTEGER PRIMARY KEY, {columns})")
        # the floor for any writer that keeps the schema: the raw insert alone into a migrated
        # rollup's model_calls (its unique request_id, ts, (user_id, ts) ... indexes), no aggregates
        floor_writer = RollupWriter(run_dir / "floor.db", retention_days=None)
        floor_writer.close()
        floor = sqlite3.connect(run_dir / "floor.db", isolation_level=None)
        floor.execute("PRAGMA synchronous=FULL")
        wall = dict.fromkeys(_LEGS, 0.0)
        cpu = dict.fromkeys(_LEGS, 0.0)
        generator = model_call_events(events, seed=100 + r)
        inserted = dict.fromkeys(_LEGS, 0)
        for number, start in enumerate(range(0, events, batch)):
            chunk = [next(generator) for _ in range(min(batch, events - start))]
            rows = prepare_rows(chunk).by_table["model_calls"]  # the baseline gets them ready-made
            legs = {
                "writer": (_write_events, writer, chunk),
                "writer_rows": (_write_rows, rows_writer, PreparedRows({"model_calls": rows})),
                "writer_deferred": (
                    _write_rows_deferred,
                    deferred_writer,
                    PreparedRows({"model_calls": rows}),
                ),
                "executemany": (_executemany, base, (bare_insert, rows)),
                "indexed_insert": (_executemany, floor, (insert, rows)),
            }
            # rotated batch by batch, so no leg always runs right after the batch was made
            turn = number % len(_LEGS)
            for leg in _LEGS[turn:] + _LEGS[:turn]:
                work, target, data = legs[leg]
                w0, c0 = time.perf_counter(), time.process_time()
                inserted[leg] += work(target, data)
                wall[leg] += time.perf_counter() - w0
                cpu[leg] += time.process_time() - c0
        assert set(inserted.values()) == {events}, inserted
        w0, c0 = time.perf_counter(), time.process_time()
        deferred_writer.fold()  # what is still unfolded counts against the deferred leg
        wall["writer_deferred"] += time.perf_counter() - w0
        cpu["writer_deferred"] += time.process_time() - c0
        deferred_writer.close()
        writer.close()
        rows_writer.close()
        base.close()
        floor.close()
        for name in ("rollup.db", "rollup-rows.db", "rollup-deferred.db"):
            with sqlite3.connect(run_dir / name) as db:
                stored = db.execute(
                    "SELECT COUNT(*), (SELECT SUM(requests) FROM agg_hour) FROM model_calls"
                ).fetchone()
            assert stored == (events, events), (name, stored)
        runs.append(
            {
                **{f"{leg}_rows_per_s": events / wall[leg] for leg in _LEGS},
                **{f"{leg}_cpu_us_per_row": 1e6 * cpu[leg] / events for leg in _LEGS},
            }
        )
        log(
            f"rollup run {r + 1}/{repeats}: "
            + ", ".join(
                f"{leg} {events / wall[leg]:,.0f} rows/s ({1e6 * cpu[leg] / events:.1f} µs CPU/row)"
                for leg in _LEGS
            )
        )
        shutil.rmtree(run_dir, ignore_errors=True)
    rate = {leg: median([x[f"{leg}_rows_per_s"] for x in runs]) for leg in _LEGS}
    cpu_us = {leg: median([x[f"{leg}_cpu_us_per_row"] for x in runs]) for leg in _LEGS}
    base_rate = rate["executemany"]
    return {
        "events": events,
        "batch": batch,
        "repeats": repeats,
        "writer_rows_per_s": round(rate["writer"]),
        "writer_write_rows_rows_per_s": round(rate["writer_rows"]),
        "executemany_rows_per_s": round(base_rate),
        "slowdown_vs_executemany": round(base_rate / rate["writer"], 2),
        "write_rows_slowdown_vs_executemany": round(base_rate / rate["writer_rows"], 2),
        "writer_deferred_rows_per_s": round(rate["writer_deferred"]),
        "write_rows_deferred_slowdown_vs_executemany": round(base_rate / rate["writer_deferred"], 2),
        "indexed_insert_rows_per_s": round(rate["indexed_insert"]),
        "indexed_insert_slowdown_vs_executemany": round(base_rate / rate["indexed_insert"], 2),
        "cpu_us_per_row": {leg: round(v, 2) for leg, v in cpu_us.items()},
        "cpu_slowdown_vs_executemany": {
            leg: round(cpu_us[leg] / cpu_us["executemany"], 2) for leg in _LEGS if leg != "executemany"
        },
        "runs": [{k: round(v, 2) for k, v in x.items()} for x in runs],
    }
