"""The spool's committer process: closed spool segments → one rollup transaction → deleted.

Started by :class:`~exporters.rollup.spool.SpooledWriter` with a pipe on its
stdin. ``stop`` on the pipe: commit every closed segment, then exit. End of
file without ``stop`` means the collector is gone (``kill -9``): exit after the
current transaction and leave the rest to the next collector's replay.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
import time
from typing import IO

from .spool import closed_segments, commit_segments
from .writer import RollupWriter

__all__ = ["main", "run"]

log = logging.getLogger("nexus_otel.committer")

_RETRY_S = 1.0


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
            if stopping:
                return 0
            message = _wait(control, poll_s)
            if message == b"":
                return 0
            stopping = stopping or b"stop" in (message or b"")
    finally:
        writer.close()


def _wait(control: IO[bytes], timeout_s: float) -> bytes | None:
    """What the collector wrote (b"" at end of file), or None after ``timeout_s`` of silence."""
    readable, _, _ = select.select([control], [], [], timeout_s)
    if not readable:
        return None
    return os.read(control.fileno(), 64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporters.rollup.committer")
    parser.add_argument("--rollup", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--poll-s", type=float, default=0.25)
    parser.add_argument("--retention-days", default="none")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(
        rollup=args.rollup,
        spool_dir=args.spool,
        batch_size=args.batch_size,
        poll_s=args.poll_s,
        retention_days=None if args.retention_days == "none" else float(args.retention_days),
        synchronous=args.synchronous,
        control=sys.stdin.buffer,
    )


if __name__ == "__main__":
    sys.exit(main())
