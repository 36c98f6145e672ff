"""The Markdown table and the met / not met summary of a run."""

from __future__ import annotations

from typing import Any

from common import EVENTS_PER_REQUEST, ISSUE_EXECUTEMANY_ROWS_PER_S, TARGETS


def _yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| measurement | nexus-otel collector | baseline | ratio | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    summary = results["summary"]
    for e in results.get("end_to_end", []):
        target = TARGETS["e2e_events_per_s"]
        lines.append(
            f"| end to end, OTLP logs ({EVENTS_PER_REQUEST}/request, {e['senders']} senders) → committed rollup "
            f"(`{e['mode']}`) | {e['events_per_s']:,} events/s acknowledged ({e.get('committed_events_per_s', 0):,}/s "
            f"committed, counting the drain at stop: {e['graceful_stop_s']} s); "
            f"p50 {e['request_latency_p50_ms']} ms/request; "
            f"rows match: {e['rows_match']}; cores used: collector {e['collector_cores']}, committer "
            f"{e['committer_cores']}; CPU per event: collector {e.get('collector_cpu_us_per_event')} µs, "
            f"committer {e.get('committer_cpu_us_per_event')} µs | — | — | "
            f"≥ {target:,}/s: {_yes(min(e['events_per_s'], e.get('committed_events_per_s', 0)) >= target)} |"
        )
    path = results.get("request_path")
    if path:
        lines.append(
            f"| … request path in process, one thread, CPU: protobuf parse + `decode_logs` (model calls "
            f"read into rows) + other rows + marshal ({path['protobuf_parse_us_per_event']} + "
            f"{path['decode_logs_us_per_event']} + {path['prepare_rows_us_per_event']} + "
            f"{path.get('marshal_us_per_event')} µs/event) | ceiling "
            f"{path['single_core_ceiling_events_per_s']:,} events/s before HTTP and any SQLite work | — | — | — |"
        )
    r = results.get("rollup")
    if r:
        limit = TARGETS["rollup_vs_executemany_max_slowdown"]
        ratio = r["write_rows_slowdown_vs_executemany"]
        cpu = r["cpu_us_per_row"]
        lines.append(
            f"| rollup commit, {r['events']:,} events in batches of {r['batch']:,} (`RollupWriter.write_rows` "
            f"of ready rows, what the committer process runs) | {r['writer_write_rows_rows_per_s']:,} rows/s "
            f"({cpu['writer_rows']} µs CPU/row) | {r['executemany_rows_per_s']:,} rows/s (`sqlite3` executemany "
            f"of the same rows; {cpu['executemany']} µs CPU/row) | {ratio}x slower "
            f"(CPU {r['cpu_slowdown_vs_executemany']['writer_rows']}x) | ≤ {limit}x: {_yes(ratio <= limit)} |"
        )
        deferred = r.get("write_rows_deferred_slowdown_vs_executemany")
        if deferred is not None:
            lines.append(
                f"| … the same with `defer_fold=True`, as the committer under load (folds every "
                f"`fold_rows`, the last one timed) | {r['writer_deferred_rows_per_s']:,} rows/s "
                f"({cpu['writer_deferred']} µs CPU/row) | {r['executemany_rows_per_s']:,} rows/s | "
                f"{deferred}x slower (CPU {r['cpu_slowdown_vs_executemany']['writer_deferred']}x) | "
                f"≤ {limit}x: {_yes(deferred <= limit)} |"
            )
        lines.append(
            f"| … `RollupWriter.write` of event objects (`prepare_rows` included) | "
            f"{r['writer_rows_per_s']:,} rows/s ({cpu['writer']} µs CPU/row) | {r['executemany_rows_per_s']:,} "
            f"rows/s | {r['slowdown_vs_executemany']}x slower | — |"
        )
        lines.append(
            f"| … its raw `INSERT OR IGNORE` alone into the indexed `model_calls` (no aggregates; the floor) | "
            f"{r['indexed_insert_rows_per_s']:,} rows/s ({cpu['indexed_insert']} µs CPU/row) | "
            f"{r['executemany_rows_per_s']:,} rows/s | "
            f"{r['indexed_insert_slowdown_vs_executemany']}x slower | — |"
        )
    for m in results.get("render", []):
        need = TARGETS["metrics_render_min_speedup"]
        lines.append(
            f"| `/metrics` render, {m['series']:,} series ({m['lines']:,} lines) | {m['ours_ms']} ms | "
            f"{m['prometheus_client_ms']} ms (`generate_latest`) | {m['speedup']}x faster | "
            f"≥ {need}x: {_yes(m['speedup'] >= need)} |"
        )
    rss = results.get("rss")
    if rss:
        for row in rss["loaded"]:
            limit = TARGETS["rss_mb_at_100k_max"]
            target = f"< {limit} MB: {_yes(row['rss_mb'] < limit)}" if row["series"] >= 100_000 else "—"
            lines.append(
                f"| collector RSS at {row['series']:,} series (idle {rss['idle_rss_mb']} MB) | {row['rss_mb']} MB "
                f"(+ committer process {row['committer_rss_mb']} MB); `GET /metrics` {row['scrape_ms']} ms | — | — | "
                f"{target} |"
            )
    lines.append("")
    lines.append("Targets: " + ", ".join(f"{k}: {_yes(v)}" for k, v in summary.items()))
    return "\n".join(lines)


def summarise(results: dict[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for e in results.get("end_to_end", []):
        # the target is committed rows: with --spool the drain after the last acknowledgement counts
        rate = min(e["events_per_s"], e.get("committed_events_per_s", e["events_per_s"]))
        out[f"e2e >= 50k events/s ({e['mode']})"] = rate >= TARGETS["e2e_events_per_s"]
    if results.get("rollup"):
        out["rollup within 2x of executemany"] = (
            results["rollup"]["write_rows_slowdown_vs_executemany"]
            <= TARGETS["rollup_vs_executemany_max_slowdown"]
        )
        if "write_rows_deferred_slowdown_vs_executemany" in results["rollup"]:
            out["rollup within 2x of executemany (deferred fold)"] = (
                results["rollup"]["write_rows_deferred_slowdown_vs_executemany"]
                <= TARGETS["rollup_vs_executemany_max_slowdown"]
            )
        # the same e2e target as a share of this machine's bare executemany, measured in this run
        share = TARGETS["e2e_events_per_s"] / ISSUE_EXECUTEMANY_ROWS_PER_S
        for e in results.get("end_to_end", []):
            rate = min(e["events_per_s"], e.get("committed_events_per_s", e["events_per_s"]))
            base = results["rollup"]["executemany_rows_per_s"]
            out[f"e2e >= {share:.1%} of executemany, machine-normalised ({e['mode']}: {rate / base:.1%})"] = (
                rate / base >= share
            )
    if results.get("render"):
        out["/metrics >= 3x generate_latest"] = all(
            m["speedup"] >= TARGETS["metrics_render_min_speedup"] for m in results["render"]
        )
    if results.get("rss"):
        big = [r for r in results["rss"]["loaded"] if r["series"] >= 100_000]
        if big:
            out["RSS < 300 MB at 100k series"] = big[0]["rss_mb"] < TARGETS["rss_mb_at_100k_max"]
    return out
