"""The committer process: the collector's rollup transactions, on a core of their own.

Spool mode (``--spool DIR``), started by :class:`~exporters.rollup.spool.SpooledWriter`
with a pipe on its stdin: closed spool segments → one transaction → deleted.
``stop`` on the pipe: commit every closed segment, then exit. End of file
without ``stop`` means the collector is gone (``kill -9``): exit after the
current transaction and leave the rest to the next collector's replay.

Stream mode (``--stream``), started by
:class:`~exporters.rollup.process_writer.ProcessWriter`: frames of prepared rows
on stdin (``<seq:u64><length:u32><concurrent:bool>`` + marshal'd ``{table: rows}``), one reply
per frame on stdout once its transaction committed (``<seq:u64><inserted:i64>
<duplicates:i64><error length:u32>`` + the error text). Frames that arrive
while a transaction runs are merged into the next one (group commit). A frame
marked concurrent (sent while other writes awaited their replies) is answered
once its raw rows committed; their fold into the aggregates is left to a later,
bigger transaction (``RollupWriter``'s deferred fold), within ``fold_rows`` rows
and ``fold_interval_s`` seconds, or when no frame arrives for 50 ms. A lone
sender's frame is folded before its reply, so it reads its aggregates as soon as
it is acknowledged. End of file: commit and fold what was read, then exit.
"""

from __future__ import annotations

import argparse
import logging
import marshal
import os
import queue
import select
import struct
import sys
import threading
import time
from typing import IO

from .rows import PreparedRows
from .spool import closed_segments, commit_segments
from .writer import RollupWriter

__all__ = ["FRAME", "REPLY", "main", "run", "run_stream"]

FRAME = struct.Struct("<QI?")
REPLY = struct.Struct("<QqqI")

log = logging.getLogger("nexus_otel.committer")

_RETRY_S = 1.0
#: With deferred rows, how long the stream committer waits for the next frame before folding them.
_IDLE_FOLD_S = 0.05


def run(
    *,
    rollup: str,
    spool_dir: str,
    batch_size: int,
    poll_s: float,
    retention_days: float | None,
    synchronous: str,
    control: IO[bytes],
) -> int:
    """Commit until told to stop (0) or the collector is gone (0); 1 if the rollup cannot be opened."""
    try:
        writer = RollupWriter(rollup, retention_days=retention_days, synchronous=synchronous)  # type: ignore[arg-type]
    except Exception:
        log.exception("the spool committer cannot open the rollup %s", rollup)
        return 1
    stopping = False
    try:
        while True:
            segments = closed_segments(spool_dir)
            if segments:
                try:  # segments hold about one flush interval each: several make one transaction
                    commit_segments(writer, segments, max_rows=batch_size)
                except Exception:
                    log.exception("committing spooled events failed; they stay spooled and are retried")
                    time.sleep(_RETRY_S)
                continue
            if writer.unfolded_rows and not _fold_deferred(writer):
                continue
            if stopping:
                return 0
            message = _wait(control, poll_s)
            if message == b"":
                return 0
            stopping = stopping or b"stop" in (message or b"")
    finally:
        writer.close()


def _fold_deferred(writer: RollupWriter) -> bool:
    """Fold what the last transactions deferred, now that the committer is idle; False if it failed.

    A failed fold leaves the rows committed and above the fold marks, so it is simply
    retried on the next idle moment, a second later rather than in a tight logging loop.
    """
    try:
        writer.fold()
    except Exception:
        log.exception("folding committed events failed; retried when idle again")
        time.sleep(_RETRY_S)
        return False
    return True


def run_stream(*, writer: RollupWriter, source: IO[bytes], sink: IO[bytes], batch_size: int) -> int:
    """Commit the frames read from ``source``, replying on ``sink``, until end of file."""
    frames: queue.Queue[tuple[int, PreparedRows, bool] | None] = queue.Queue()
    reader = threading.Thread(target=_read_frames, args=(source, frames), name="nexus-frames", daemon=True)
    reader.start()
    done = False
    while not done:
        try:
            first = frames.get(timeout=_IDLE_FOLD_S if writer.unfolded_rows else None)
        except queue.Empty:  # quiet for a moment
            _fold_deferred(writer)
            continue
        if first is None:
            break
        batch, size = [first], len(first[1])
        while size < batch_size:
            try:
                item = frames.get_nowait()
            except queue.Empty:
                break
            if item is None:
                done = True
                break
            batch.append(item)
            size += len(item[1])
        concurrent = all(c for _, _, c in batch)
        results = writer.write_batches([rows for _, rows, _ in batch], defer_fold=concurrent)
        for (seq, _, _), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                text = f"{type(result).__name__}: {result}".encode()
                sink.write(REPLY.pack(seq, 0, 0, len(text)) + text)
            else:
                sink.write(REPLY.pack(seq, result.inserted, result.duplicates, 0))
        sink.flush()
    return 0


def _read_frames(source: IO[bytes], frames: queue.Queue[tuple[int, PreparedRows, bool] | None]) -> None:
    try:
        while True:
            header = source.read(FRAME.size)
            if len(header) < FRAME.size:
                return
            seq, length, concurrent = FRAME.unpack(header)
            payload = source.read(length)
            if len(payload) < length:
                return  # the collector died mid-frame: it was never acknowledged
            frames.put((seq, PreparedRows(marshal.loads(payload)), concurrent))
    finally:
        frames.put(None)


def _wait(control: IO[bytes], timeout_s: float) -> bytes | None:
    """What the collector wrote (b"" at end of file), or None after ``timeout_s`` of silence."""
    readable, _, _ = select.select([control], [], [], timeout_s)
    if not readable:
        return None
    return os.read(control.fileno(), 64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporters.rollup.committer")
    parser.add_argument("--rollup", required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--spool", help="commit closed segments of this spool directory")
    mode.add_argument("--stream", action="store_true", help="commit frames from stdin, reply on stdout")
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--poll-s", type=float, default=0.25)
    parser.add_argument("--retention-days", default="none")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    retention_days = None if args.retention_days == "none" else float(args.retention_days)
    if args.stream:
        writer = RollupWriter(
            args.rollup,
            retention_days=retention_days,
            synchronous=args.synchronous,
            batch_size=args.batch_size,
        )
        try:
            return run_stream(
                writer=writer, source=sys.stdin.buffer, sink=sys.stdout.buffer, batch_size=args.batch_size
            )
        finally:
            writer.close()
    return run(
        rollup=args.rollup,
        spool_dir=args.spool,
        batch_size=args.batch_size,
        poll_s=args.poll_s,
        retention_days=retention_days,
        synchronous=args.synchronous,
        control=sys.stdin.buffer,
    )


if __name__ == "__main__":
    sys.exit(main())
