"""Record model calls and product events on chosen dates through the real decorators into a rollup.

``with RecordedTraffic(path, start=...) as traffic: traffic.call(ts, ...)`` runs
``track_model_call`` under a :class:`nexus_otel.clock.SimulatedClock`, with the
embedded rollup sink and the round test prices (tests/data/test-prices.yaml:
gpt-test $2/$8 per million input/output tokens, gpt-test-big $10/$40,
claude-test $3/$15), so every stored cost is computed by the product.
"""

from __future__ import annotations

from pathlib import Path

import nexus_otel
from nexus_otel.clock import SimulatedClock
from recommender.params import Query, TimeRange

__all__ = ["DATA", "RecordedTraffic", "app_settings", "custom_query"]

DATA = Path(__file__).parent / "data"


class ProviderError(Exception):
    """Stands in for a provider's exception; its class name becomes error.type."""


class RecordedTraffic:
    def __init__(self, rollup: Path, *, start: float) -> None:
        self.rollup = rollup
        self.start = start
        self.calls = 0
        self._clock: SimulatedClock | None = None
        self._telemetry = None

    def __enter__(self) -> RecordedTraffic:
        self._telemetry = nexus_otel.configure(
            rollup=str(self.rollup),
            # the simulated times lie in the past: wall-clock retention must not prune an earlier session's rows
            rollup_retention_days=0,
            price_files=(str(DATA / "test-prices.yaml"),),
            service_name="recommender-tests",
            event_batch_size=4096,
            event_flush_interval_s=0.5,
            event_queue_size=100_000,
        )
        self._clock = SimulatedClock(start=self.start)
        self._clock.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._clock is not None
        self._clock.__exit__(None, None, None)
        nexus_otel.shutdown()

    def _at(self, ts: float) -> None:
        assert self._clock is not None
        assert self._telemetry is not None
        self._clock.set(ts)
        if len(self._telemetry.events) > 50_000:
            self._telemetry.events.flush(60.0)

    def call(
        self,
        ts: float,
        *,
        model: str = "gpt-test",
        provider: str = "openai",
        user_id: str | None = None,
        team: str | None = None,
        project: str | None = None,
        feature: str | None = None,
        input_tokens: int = 1000,
        output_tokens: int = 100,
        cache_read_tokens: int = 0,
        latency_s: float = 0.5,
        error: bool = False,
        routed_from: str | None = None,
        router_confidence: float | None = None,
    ) -> str:
        """One call at ``ts``; returns its request id (for feedback)."""
        self._at(ts)
        tracker = nexus_otel.track_model_call(
            model=model,
            provider=provider,
            user_id=user_id,
            team=team,
            project=project,
            feature=feature,
            routed=routed_from is not None,
            baseline_model=routed_from,
            router_confidence=router_confidence,
        )
        try:
            with tracker as call:
                call.record_usage(
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    cache_read_tokens=cache_read_tokens,
                )
                self._clock.advance(latency_s)  # type: ignore[union-attr]
                if error:
                    raise ProviderError("simulated provider failure")
        except ProviderError:
            pass
        self.calls += 1
        return call.request_id

    def feature_use(
        self, ts: float, feature: str, *, user_id: str, team: str | None = None, count: int = 1
    ) -> None:
        self._at(ts)
        nexus_otel.track_feature(feature, count=count, user_id=user_id, team=team)

    def feedback(self, ts: float, request_id: str, score: float, *, user_id: str | None = None) -> None:
        self._at(ts)
        nexus_otel.track_feedback(request_id, score, user_id=user_id)

    def revenue(
        self, ts: float, user_id: str, amount_usd: float, *, plan: str = "pro", team: str | None = None
    ) -> None:
        self._at(ts)
        nexus_otel.track_revenue(user_id, amount_usd, plan, team=team)


def app_settings(rollup: Path, **extra: object) -> dict[str, object]:
    """Recommender settings for tests: the rollup plus admin/team/user/alerts keys (see KEYS)."""
    from recommender.auth import hash_api_key

    keys = [{"name": name, "hash": hash_api_key(key), "scope": scope} for name, (key, scope) in KEYS.items()]
    # answers are neither cached nor precomputed unless a test asks: most tests read right after recording
    return {
        "rollup_path": str(rollup),
        "api_keys": keys,
        "anomaly_interval_s": 0,
        "response_cache_s": 0,
        "precompute_interval_s": 0,
        **extra,
    }


#: name -> (key, scope) configured by :func:`app_settings`
KEYS: dict[str, tuple[str, str]] = {
    "admin": ("test-admin-key-0001", "admin"),
    "team-search": ("test-team-key-search", "team:search"),
    "user-alice": ("test-user-key-alice", "user:alice"),
    "alerts": ("test-alerts-key-0001", "alerts"),
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


def custom_query(start: float, end: float, **filters: str) -> Query:
    """The recommender's query for ``[start, end)`` under ``filters``, as a ``from``/``to`` request parses to."""
    return Query(TimeRange(start, end, "custom"), tuple(sorted(filters.items())))
