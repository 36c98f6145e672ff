"""kill -9 of a process writing the rollup under load loses no acknowledged event and double-counts none."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from exporters.rollup import AGG_TABLES, ProcessWriter, RollupWriter, SpooledWriter, open_database
from exporters.rollup.spool import EventSpool
from tests.prom_servers import wait_until
from tests.rollup_data import model_call

REPO = Path(__file__).resolve().parent.parent
PER_BATCH = 64

# Two threads write numbered batches as fast as they can, each batch followed by a
# re-delivery of the previous one, and print "ack N" once write() returned for N.
CHILD = """
import sys, threading
sys.path.insert(0, sys.argv[1])
from exporters.rollup import ProcessWriter, RollupWriter, SpooledWriter
from tests.test_rollup_durability import batch
mode, db, spool = sys.argv[2], sys.argv[3], sys.argv[4]
if mode == "process":
    writer = ProcessWriter(db, retention_days=None)
else:
    writer = RollupWriter(db, retention_days=None)
if mode == "spool":
    writer = SpooledWriter(writer, spool, flush_interval_s=0.01)
lock = threading.Lock()
def run(first):
    n = first
    while True:
        writer.write(batch(n))
        with lock:
            print("ack", n, flush=True)
        if n >= 2:
            writer.write(batch(n - 2))
        n += 2
threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in (0, 1)]
for t in threads: t.start()
for t in threads: t.join()
"""


def batch(n: int) -> list:
    return [
        model_call(
            1_767_225_600.0 + n * 10 + j / 100, f"b{n}-{j}", user_id=f"u{j % 7}", cost_usd=0.001 * (j + 1)
        )
        for j in range(PER_BATCH)
    ]


def _run_and_kill(tmp_path: Path, mode: str) -> tuple[Path, Path, set[int]]:
    db, spool = tmp_path / "rollup.db", tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(REPO), mode, str(db), str(spool)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(acked) < 60:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"writer exited early: {child.stderr.read()}")
            acked.add(int(line.split()[1]))
            if time.monotonic() > deadline:
                pytest.fail("writer too slow to acknowledge 60 batches within 60 s")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    acked.update(int(line.split()[1]) for line in out.splitlines() if line.startswith("ack "))
    assert child.returncode == -signal.SIGKILL
    return db, spool, acked


def _check(db_path: Path, acked: set[int]) -> None:
    db = open_database(db_path, readonly=True)
    try:
        ids = {r[0] for r in db.execute("SELECT request_id FROM model_calls")}
        total, cost = db.execute("SELECT COUNT(*), TOTAL(cost_usd) FROM model_calls").fetchone()
        for n in acked:
            missing = {f"b{n}-{j}" for j in range(PER_BATCH)} - ids
            assert not missing, f"acknowledged batch {n} lost {len(missing)} events"
        assert total == len(ids)  # request ids are unique: nothing stored twice
        # batches are all-or-nothing: only whole batches, some committed but not yet acknowledged
        assert total % PER_BATCH == 0
        for table in AGG_TABLES:
            requests, agg_cost = db.execute(f"SELECT SUM(requests), TOTAL(cost_usd) FROM {table}").fetchone()
            assert requests == total, table
            assert agg_cost == pytest.approx(cost, rel=1e-12), table
        assert db.execute("SELECT SUM(requests) FROM user_day").fetchone()[0] == total
    finally:
        db.close()


def test_kill_9_while_committing_directly(tmp_path):
    db, _, acked = _run_and_kill(tmp_path, "direct")
    RollupWriter(db, retention_days=None).close()  # reopening recovers the WAL
    _check(db, acked)


def test_kill_9_while_a_committer_process_commits(tmp_path):
    """The collector's direct mode: acknowledged once the committer process replied."""
    db, _, acked = _run_and_kill(tmp_path, "process")
    RollupWriter(db, retention_days=None).close()
    _check(db, acked)


def test_kill_9_with_the_spool_then_replay(tmp_path):
    db, spool, acked = _run_and_kill(tmp_path, "spool")
    writer = SpooledWriter(RollupWriter(db, retention_days=None), spool)
    assert writer.replayed.inserted + writer.replayed.duplicates > 0 or not EventSpool(spool).segments()
    writer.close()
    assert EventSpool(spool).segments() == []  # replayed segments are deleted
    _check(db, acked)


def test_spool_replay_ignores_a_torn_tail_and_is_idempotent(tmp_path):
    spool_dir = tmp_path / "spool"
    spool = EventSpool(spool_dir)
    spool.append(batch(0))
    spool.append(batch(1))
    segment = spool.rotate()
    with open(segment, "ab") as f:  # a crash in the middle of a third append
        f.write(b"\x10\x00\x00\x00garbage")
    writer = SpooledWriter(RollupWriter(tmp_path / "r.db", retention_days=None), spool_dir)
    assert (writer.replayed.inserted, writer.replayed.duplicates) == (2 * PER_BATCH, 0)
    writer.write(batch(1))  # a sender retrying: spooled again, committed as duplicates
    writer.close()
    _check(tmp_path / "r.db", {0, 1})


def test_a_spool_of_the_earlier_json_format_is_replayed(tmp_path):
    """Segments written before the spool held marshal'd rows (JSON event batches) still commit on start."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    records = b""
    for n in (0, 1):
        events = batch(n)
        payload = json.dumps(
            [[e.name, [getattr(e, f.name) for f in dataclasses.fields(e)]] for e in events]
        ).encode()
        records += struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    (spool_dir / "segment-000000000001.spool").write_bytes(records)
    writer = SpooledWriter(RollupWriter(tmp_path / "r.db", retention_days=None), spool_dir)
    assert (writer.replayed.inserted, writer.replayed.duplicates) == (2 * PER_BATCH, 0)
    writer.close()
    _check(tmp_path / "r.db", {0, 1})


def test_the_committer_process_commits_while_the_collector_keeps_spooling(tmp_path):
    writer = SpooledWriter(RollupWriter(tmp_path / "r.db", retention_days=None), tmp_path / "spool")
    try:
        for n in range(6):
            writer.write(batch(n))
        writer.flush()  # returns once the committer process committed and deleted every segment
        assert EventSpool(tmp_path / "spool").segments() == []
        assert writer.ready()  # the committer process is still running: it, not a fallback here, committed
        _check(tmp_path / "r.db", set(range(6)))
    finally:
        writer.close()


def _dead(pid: int) -> bool:
    """Whether ``pid`` has died: a zombie for its parent (the writer) to reap, or gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _kill_and_reap(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _dead(pid), timeout_s=30, what=f"committer {pid} to die", interval_s=0.02)


def _write_as_a_sender_would(writer: ProcessWriter, events: list) -> int:
    """Write, retrying once after a failure like an OTLP sender after a 503; rows newly inserted."""
    try:
        return writer.write(events).inserted
    except RuntimeError:
        return writer.write(events).inserted


def test_a_process_writer_survives_its_committer_dying(tmp_path):
    writer = ProcessWriter(tmp_path / "r.db", retention_days=None)
    try:
        assert writer.write(batch(0)).inserted == PER_BATCH
        assert writer.write(batch(0)).duplicates == PER_BATCH  # re-delivery
        _check(tmp_path / "r.db", {0})  # committed when write returned
        first = writer.committer_pid
        _kill_and_reap(first)
        # a write racing the death may fail (the sender gets a 503 and retries); the retry lands
        assert _write_as_a_sender_would(writer, batch(1)) == PER_BATCH  # a new committer took over
        assert writer.committer_pid != first
        _check(tmp_path / "r.db", {0, 1})
        _kill_and_reap(writer.committer_pid)
        assert writer.ready()  # a readiness probe replaces it too, so traffic can come back
        assert _write_as_a_sender_would(writer, batch(2)) == PER_BATCH
        _check(tmp_path / "r.db", {0, 1, 2})
    finally:
        writer.close()


def test_a_stuck_committer_fails_the_write_and_the_retry_counts_once(tmp_path):
    writer = ProcessWriter(tmp_path / "r.db", retention_days=None, commit_timeout_s=1.0)
    pid = writer.committer_pid
    try:
        os.kill(pid, signal.SIGSTOP)  # alive but not answering, like a committer stuck on its disk
        with pytest.raises(RuntimeError, match="did not confirm the commit within 1 s"):
            writer.write(batch(0))
        os.kill(pid, signal.SIGCONT)
        writer.commit_timeout_s = 60.0  # the retry waits for the late first commit too, on a loaded machine
        result = writer.write(batch(0))  # the sender's retry, after the first copy was committed late
        assert result.inserted + result.duplicates == PER_BATCH
        assert writer.committer_pid == pid  # not restarted: it was alive all along
        _check(tmp_path / "r.db", {0})
    finally:
        os.kill(pid, signal.SIGCONT)
        writer.close()


def test_a_spool_committer_that_dies_is_replaced(tmp_path):
    writer = SpooledWriter(
        RollupWriter(tmp_path / "r.db", retention_days=None), tmp_path / "spool", flush_interval_s=0.05
    )
    try:
        first = writer.committer_pid
        _kill_and_reap(first)
        # the rotation thread starts a new one
        wait_until(
            lambda: writer.committer_pid != first and writer.ready(),
            timeout_s=60,
            what="a new committer",
            interval_s=0.05,
        )
        writer.write(batch(0))
        writer.flush()
        assert writer.ready()  # the new committer, not a fallback here, committed
        _check(tmp_path / "r.db", {0})
    finally:
        writer.close()
