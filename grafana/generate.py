#!/usr/bin/env python3
"""Generate nexus-otel's Grafana dashboards (``grafana/dashboards/*.json``).

Plain Python, no dependencies: the dashboards live in ``nexus_dashboards/``, one
module each, built by the same few helpers, so the six share variables, units,
thresholds, links and query filters. The committed JSON is what Grafana loads;
``tests/test_grafana_dashboards.py`` proves it equals this script's output, so
edit those modules and run::

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if a committed file differs

Queries prefer the recording rules of ``rules/recording.yml`` (their names
say which labels they keep); raw series appear only where no rule fits (totals
over the dashboard's time range, feedback, feature usage, router confidence).
Every query filters by the variables its series carry: ``$team``/``$project``
(``nexus_team``/``nexus_project``) and ``$model`` (``gen_ai_request_model``);
gauges without those labels (active users, the recommender's insights) are not
filtered. The output is deterministic (sorted keys, fixed ids and layout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # a script beside its package, not an installed module

from nexus_dashboards import (  # noqa: E402
    DATASOURCE_UID,
    RECOMMENDER_METRICS,
    SCHEMA_VERSION,
    render,
)

__all__ = ["DATASOURCE_UID", "OUT_DIR", "RECOMMENDER_METRICS", "SCHEMA_VERSION", "main", "render"]

OUT_DIR = HERE / "dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    files = render()
    stale = sorted(
        name
        for name, text in files.items()
        if not (args.out / name).exists() or (args.out / name).read_text() != text
    )
    extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in files)
    if args.check:
        for name in stale + extra:
            print(f"{args.out / name} is not what grafana/generate.py produces", file=sys.stderr)
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).write_text(files[name])
        print(f"wrote {args.out / name}")
    for name in extra:
        (args.out / name).unlink()
        print(f"removed {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
