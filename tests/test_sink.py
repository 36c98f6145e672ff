"""The event pipeline never blocks the caller, batches, and counts what it drops."""

import threading
import time

import pytest

from nexus_otel.events import FeatureUseEvent
from nexus_otel.sink import EventSink


class ListExporter:
    """An exporter a user could plug in: keeps every batch it is handed."""

    def __init__(self, *, block: threading.Event | None = None, fail: bool = False) -> None:
        self.batches: list[list] = []
        self.block = block
        self.fail = fail
        self.shut = False

    def export(self, batch):
        if self.block is not None:
            self.block.wait(10)
        if self.fail:
            raise ConnectionError("collector unreachable")
        self.batches.append(list(batch))

    def shutdown(self):
        self.shut = True


def _event(i: int) -> FeatureUseEvent:
    return FeatureUseEvent(timestamp=1_700_000_000 + i, feature=f"f{i}")


def test_full_batches_are_exported_without_waiting_for_the_interval():
    exporter = ListExporter()
    sink = EventSink([exporter], batch_size=50, flush_interval_s=60)
    for i in range(120):
        sink.submit(_event(i))
    deadline = time.monotonic() + 5
    while sum(map(len, exporter.batches)) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in exporter.batches][:2] == [50, 50]
    sink.shutdown()
    assert sum(map(len, exporter.batches)) == 120
    assert [e.feature for b in exporter.batches for e in b] == [f"f{i}" for i in range(120)]
    assert exporter.shut


def test_partial_batch_goes_out_after_the_flush_interval():
    exporter = ListExporter()
    sink = EventSink([exporter], batch_size=50, flush_interval_s=0.2)
    for i in range(3):
        sink.submit(_event(i))
    deadline = time.monotonic() + 5
    while not exporter.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in exporter.batches] == [3]
    sink.shutdown()


def test_full_queue_drops_and_counts_instead_of_blocking():
    release = threading.Event()
    drops: list[tuple[str, int]] = []
    exporter = ListExporter(block=release)
    sink = EventSink(
        [exporter], max_queue=10, batch_size=5, flush_interval_s=60, on_drop=lambda r, n: drops.append((r, n))
    )
    started = time.monotonic()
    for i in range(100):
        sink.submit(_event(i))
    assert time.monotonic() - started < 5  # the exporter is stuck; submit must not be
    release.set()
    sink.shutdown()
    exported = sum(map(len, exporter.batches))
    dropped = sum(n for reason, n in drops if reason == "queue_full")
    assert exported + dropped == 100
    assert dropped >= 85


def test_failing_exporter_counts_drops_and_others_still_receive():
    drops: list[tuple[str, int]] = []
    bad, good = ListExporter(fail=True), ListExporter()
    sink = EventSink(
        [bad, good], batch_size=4, flush_interval_s=60, on_drop=lambda r, n: drops.append((r, n))
    )
    for i in range(8):
        sink.submit(_event(i))
    assert sink.flush(5)
    sink.shutdown()
    assert sum(map(len, good.batches)) == 8
    assert sum(n for r, n in drops if r == "export_failed") == 8


def test_submit_after_shutdown_is_counted_not_raised():
    drops: list[tuple[str, int]] = []
    sink = EventSink([ListExporter()], on_drop=lambda r, n: drops.append((r, n)))
    sink.shutdown()
    sink.submit(_event(1))
    assert drops == [("shutdown", 1)]


@pytest.mark.parametrize("kwargs", [{"max_queue": 0}, {"batch_size": 0}, {"flush_interval_s": 0}])
def test_bad_settings_fail_at_construction(kwargs):
    with pytest.raises(ValueError, match="must be"):
        EventSink([ListExporter()], **kwargs)


def test_forked_child_does_not_export_the_parents_queue(tmp_path):
    import os

    exporter = ListExporter()
    sink = EventSink([exporter], batch_size=1000, flush_interval_s=60)
    sink.submit(_event(1))
    pid = os.fork()
    if pid == 0:  # child: its queue starts empty
        os._exit(0 if len(sink) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.shutdown()
    assert sum(map(len, exporter.batches)) == 1
