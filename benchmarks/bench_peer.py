"""A peer's auto-instrumentation on the mocked OpenAI call, run in the peer's own virtualenv.

    benchmarks/.venvs/openlit/bin/python benchmarks/bench_peer.py openlit
    benchmarks/.venvs/official/bin/python benchmarks/bench_peer.py official
    benchmarks/.venvs/official-v2/bin/python benchmarks/bench_peer.py official-v2

Both peers patch ``openai.resources.chat.completions.Completions.create`` on the
class, so the uninstrumented call is the original function kept from before
patching, called on the same client: bare and instrumented calls interleave in
one process. Prints one JSON document (see ``harness.emit``).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from harness import emit, measure
from openai_mock import REQUEST, make_client
from otel_setup import SdkSetup, install_sdk
from otlp_sink import LoopbackSink

# OpenLIT's pricing format: USD per 1K tokens (o4-mini list prices).
OPENLIT_PRICES = {
    "chat": {
        "o4-mini": {"promptPrice": 0.0011, "completionPrice": 0.0044, "cacheReadPrice": 0.000275},
        "o4-mini-2025-04-16": {"promptPrice": 0.0011, "completionPrice": 0.0044, "cacheReadPrice": 0.000275},
    }
}


def instrument_openlit(setup: SdkSetup) -> None:
    import openlit

    prices = Path(tempfile.mkdtemp(prefix="bench-openlit-")) / "pricing.json"
    prices.write_text(json.dumps(OPENLIT_PRICES))
    # The SDK providers are installed globally first, so openlit.init() reuses
    # them instead of building console/OTLP exporters. Prompt/completion
    # capture is off, like the other instrumentations' defaults.
    openlit.init(
        service_name="benchmark",
        pricing_json=str(prices),
        capture_message_content=False,
        collect_gpu_stats=False,
        collect_system_metrics=False,
        disable_batch=False,
    )


def instrument_official(setup: SdkSetup, module: str) -> None:
    import importlib

    instrumentor = importlib.import_module(module).OpenAIInstrumentor
    instrumentor().instrument(
        tracer_provider=setup.tracer_provider,
        meter_provider=setup.meter_provider,
        logger_provider=setup.logger_provider,
    )


PEERS = {
    "openlit": instrument_openlit,
    "official": lambda setup: instrument_official(setup, "opentelemetry.instrumentation.genai.openai"),
    "official-v2": lambda setup: instrument_official(setup, "opentelemetry.instrumentation.openai_v2"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--settle-every", type=int, default=1, help="flush the span/log export every N batches"
    )
    parser.add_argument(
        "--export",
        choices=["otlp", "discard"],
        default="otlp",
        help="spans/log records over OTLP/HTTP to a loopback sink (default), or counted and dropped",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    from openai.resources.chat.completions import Completions

    original_create = Completions.create
    sink = LoopbackSink() if args.export == "otlp" else None
    setup = install_sdk(otlp_endpoint=sink.url if sink else None)
    PEERS[args.peer](setup)
    if Completions.create is original_create:
        raise SystemExit(f"{args.peer} did not instrument Completions.create")

    client = make_client()
    completions = client.chat.completions

    def bare() -> Any:
        return original_create(completions, **REQUEST)

    def instrumented() -> Any:
        return completions.create(**REQUEST)

    results = measure(
        {"mocked_client_bare": bare, "mocked_client_instrumented": instrumented},
        calls=args.calls,
        repeats=args.repeats,
        warmup=args.warmup,
        settle={"mocked_client_instrumented": setup.flush},
        settle_every=args.settle_every,
    )
    exported = setup.flush_counts()
    received = sink.counts() if sink else None
    if sink:
        sink.stop()
    emit(
        results,
        peer=args.peer,
        export=args.export,
        produced={**exported, "metric_points": setup.metric_points()},
        sink_received=received,
    )


if __name__ == "__main__":
    main()
