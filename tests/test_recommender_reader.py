"""Rollup reads side by side (``Rollup.concurrently``): results in order, errors raised, snapshots kept."""

from __future__ import annotations

import threading

import pytest

from exporters.rollup import RollupWriter
from recommender.store.reader import Rollup
from tests.rollup_data import model_call, utc

T0 = utc("2026-03-02T10:00:00")


@pytest.fixture
def rollup(tmp_path):
    path = tmp_path / "rollup.db"
    writer = RollupWriter(path, retention_days=None)
    writer.write([model_call(T0 + i, f"r{i}", team="search", project="web") for i in range(5)])
    writer.close()
    reader = Rollup(path, read_workers=2)
    yield reader
    reader.close()


def _count(rollup: Rollup) -> int:
    return rollup.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0]


def test_reads_run_on_reader_threads_with_their_own_connections_and_come_back_in_order(rollup):
    barrier = threading.Barrier(3, timeout=10)  # all three reads at once, or this times out

    def read(n: int):
        def run():
            barrier.wait()
            return n, threading.current_thread().name, id(rollup.connection()), _count(rollup)

        return run

    results = rollup.concurrently(read(0), read(1), read(2))
    assert [r[0] for r in results] == [0, 1, 2]
    assert results[0][1] == threading.current_thread().name
    assert all(r[1].startswith("nexus-rollup-read") for r in results[1:])
    assert len({r[2] for r in results}) == 3
    assert [r[3] for r in results] == [5, 5, 5]


def test_an_error_in_any_read_is_raised_after_every_read_finished(rollup):
    finished = []

    def slow():
        threading.Event().wait(0.2)  # still running when the failing read has raised
        finished.append("slow")
        return 1

    def fails():
        raise ValueError("bad read")

    with pytest.raises(ValueError, match="bad read"):
        rollup.concurrently(lambda: _count(rollup), fails, slow)
    assert finished == ["slow"]
    with pytest.raises(ValueError, match="bad read"):
        rollup.concurrently(fails, slow)
    assert finished == ["slow", "slow"]


def test_inside_a_snapshot_or_from_a_reader_thread_reads_run_one_after_another(rollup):
    here = threading.current_thread().name
    with rollup.snapshot():
        names = rollup.concurrently(*(lambda: threading.current_thread().name for _ in range(3)))
    assert names == [here] * 3

    def nested():
        return rollup.concurrently(*(lambda: threading.current_thread().name for _ in range(3)))

    _, inner = rollup.concurrently(lambda: None, nested)
    assert len(set(inner)) == 1
    assert inner[0].startswith("nexus-rollup-read")


def test_without_reader_threads_reads_run_in_the_callers_thread(rollup):
    sequential = Rollup(rollup.path, read_workers=0)
    here = threading.current_thread().name
    assert sequential.concurrently(*(lambda: threading.current_thread().name for _ in range(3))) == [here] * 3
    with pytest.raises(ValueError, match="read_workers"):
        Rollup(rollup.path, read_workers=-1)
