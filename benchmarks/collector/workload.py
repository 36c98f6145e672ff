"""Deterministic synthetic traffic for the collector benchmarks.

``model_call_events`` yields realistic model-call events: six models of three
providers, 2,000 users in 12 teams (each team with one project and two of the 24
features, as attribution usually goes), 2 % errors, some
streamed calls with a time to first token, cached and reasoning tokens, and
timestamps advancing at ``rate_per_s`` (so a 20k-event batch spans a couple of
minutes, like a busy collector's). Every event carries a unique request id.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from nexus_otel.events import ModelCallEvent

__all__ = ["START_TS", "model_call_events"]

START_TS = 1_760_000_000.0  # a fixed moment, so runs are comparable

_MODELS = (
    ("gpt-4o", "openai", 2.5e-6, 10e-6),
    ("gpt-4o-mini", "openai", 0.15e-6, 0.6e-6),
    ("o4-mini", "openai", 1.1e-6, 4.4e-6),
    ("claude-sonnet-4", "anthropic", 3e-6, 15e-6),
    ("claude-haiku-3.5", "anthropic", 0.8e-6, 4e-6),
    ("gemini-2.0-flash", "gcp.gemini", 0.1e-6, 0.4e-6),
)
_TEAMS = tuple(f"team-{i:02d}" for i in range(12))
_PROJECTS = ("web", "mobile", "batch")
_FEATURES = tuple(f"feature-{i:02d}" for i in range(24))


def model_call_events(
    n: int, *, seed: int = 1, start_ts: float = START_TS, rate_per_s: float = 200.0, id_prefix: str = "req"
) -> Iterator[ModelCallEvent]:
    rng = random.Random(seed)
    step = 1.0 / rate_per_s
    for i in range(n):
        model, provider, in_price, out_price = _MODELS[rng.randrange(len(_MODELS))]
        input_tokens = rng.randrange(50, 4000)
        output_tokens = rng.randrange(10, 800)
        cache_read = input_tokens // 2 if rng.random() < 0.3 else 0
        reasoning = output_tokens // 3 if model == "o4-mini" else 0
        error = rng.random() < 0.02
        streamed = rng.random() < 0.25
        latency = round(rng.lognormvariate(0.0, 0.8), 4)
        user = rng.randrange(2000)
        team = user % len(_TEAMS)
        yield ModelCallEvent(
            timestamp=round(start_ts + i * step, 6),
            request_id=f"{id_prefix}-{seed}-{i}",
            user_id=f"user-{user:04d}",
            session_id=f"sess-{rng.randrange(20000):05d}",
            team=_TEAMS[team],
            project=_PROJECTS[team % len(_PROJECTS)],
            feature=_FEATURES[2 * team + rng.randrange(2)],
            model=model,
            response_model=f"{model}-2025-01-01",
            provider=provider,
            operation="chat",
            server_address="api.example.com",
            input_tokens=input_tokens,
            output_tokens=0 if error else output_tokens,
            cache_read_tokens=cache_read,
            reasoning_tokens=reasoning,
            cost_usd=None if error else round(input_tokens * in_price + output_tokens * out_price, 8),
            priced=not error,
            latency_s=latency,
            ttft_s=round(latency * 0.2, 4) if streamed else None,
            streamed=streamed,
            outcome="error" if error else "success",
            error_type="RateLimitError" if error else None,
        )
