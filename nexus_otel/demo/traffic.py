"""Realistic simulated AI traffic driven through the real nexus-otel API.

Users belong to teams and projects and use features; each feature has a model
mix (some routed by a smart router from an expensive baseline model), a share
of streamed calls, and its own prompt sizes. Traffic follows a diurnal and
weekly rhythm. Users leave feedback on some answers, pay for plans, and open
sessions. Scheduled incidents (a cost spike, a latency degradation, an error
burst, a usage drop) change the fake providers' behaviour for a while so the
alert rules and anomaly detectors have something to find.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field

from ..attribution import attribution
from ..business import end_session, start_session, track_feature, track_feedback, track_revenue
from ..integrations.anthropic import instrument_anthropic
from ..integrations.openai import instrument_openai
from ..tracking import current_call, track_model_call
from .providers import DirectProviders, ProviderBehaviour, anthropic_client, openai_client

__all__ = ["FEATURES", "Incident", "TrafficSimulator"]


@dataclass(frozen=True)
class FeatureProfile:
    name: str
    team: str
    project: str
    provider: str
    models: tuple[tuple[str, float], ...]  # (model, weight)
    prompt_words: int
    stream_share: float = 0.0
    routed_from: str | None = None  # the router's baseline model for this feature
    api: str = "chat"  # chat | responses | messages


FEATURES: tuple[FeatureProfile, ...] = (
    FeatureProfile(
        "ticket-summary", "support", "helpdesk", "openai", (("gpt-4o-mini", 0.8), ("gpt-4o", 0.2)), 300
    ),
    FeatureProfile(
        "chat-assistant",
        "support",
        "helpdesk",
        "openai",
        (("gpt-4o-mini", 0.6), ("gpt-4.1-mini", 0.4)),
        120,
        stream_share=0.7,
        routed_from="gpt-4o",
    ),
    FeatureProfile(
        "code-review",
        "platform",
        "devtools",
        "anthropic",
        (("claude-haiku-4-5", 0.5), ("claude-sonnet-4-5", 0.5)),
        900,
        stream_share=0.3,
        api="messages",
    ),
    FeatureProfile(
        "sql-copilot",
        "platform",
        "devtools",
        "openai",
        (("o4-mini", 0.7), ("gpt-4.1", 0.3)),
        250,
        routed_from="o3",
        api="responses",
    ),
    FeatureProfile(
        "search-answers",
        "growth",
        "website",
        "openai",
        (("gpt-4.1-nano", 0.7), ("gpt-4o-mini", 0.3)),
        200,
        stream_share=0.5,
        routed_from="gpt-4.1",
    ),
    FeatureProfile(
        "email-drafts", "growth", "crm", "anthropic", (("claude-haiku-4-5", 1.0),), 180, api="messages"
    ),
)
PLANS = (("free", 0.0), ("pro", 20.0), ("team", 99.0))


@dataclass(frozen=True)
class Incident:
    """From ``start_s`` for ``duration_s`` seconds of simulated time, the providers misbehave."""

    kind: str  # cost_spike | latency | errors | usage_drop
    start_s: float
    duration_s: float

    def active(self, t: float) -> bool:
        return self.start_s <= t < self.start_s + self.duration_s


@dataclass
class Totals:
    calls: int = 0
    errors: int = 0
    feedback: int = 0
    sessions: int = 0


@dataclass
class TrafficSimulator:
    """Makes calls through instrumented fake clients. Deterministic for a given ``seed``."""

    seed: int = 7
    users: int = 60
    incidents: tuple[Incident, ...] = ()
    live: bool = False  # take the simulated provider latency through nexus_otel.clock.sleep
    #: call provider-shaped functions through ``track_model_call`` instead of the official
    #: clients on a mock transport: ~15x cheaper per call, for backfilling history
    direct: bool = False
    #: live mode: set when the demo stops, cutting the simulated latency of calls in flight short
    stopping: threading.Event | None = None
    rng: random.Random = field(init=False)
    totals: Totals = field(default_factory=Totals)

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("users must be >= 1")
        self.rng = random.Random(self.seed)
        self.behaviour = ProviderBehaviour(
            rng=random.Random(self.seed + 1), sleep=self.live, interrupt=self.stopping
        )
        self.raw_openai = openai_client(self.behaviour)
        self.raw_anthropic = anthropic_client(self.behaviour)
        self.openai = instrument_openai(openai_client(self.behaviour))
        self.anthropic = instrument_anthropic(anthropic_client(self.behaviour))
        self.providers = DirectProviders(self.behaviour)
        # A few heavy users, a long tail: Zipf-like activity weights.
        self._user_weights = [1 / (i + 1) ** 0.8 for i in range(self.users)]
        self._user_feature = {f"user-{i:03d}": FEATURES[i % len(FEATURES)] for i in range(self.users)}
        self._plans = {u: self.rng.choices(PLANS, weights=(6, 3, 1))[0] for u in self._user_feature}

    @staticmethod
    def rate_factor(t_unix: float) -> float:
        """Relative traffic at a time: a diurnal curve (peak 15:00 UTC) and quieter weekends."""
        hour = (t_unix / 3600) % 24
        weekday = int((t_unix // 86400 + 3) % 7)  # 0 = Monday (1970-01-01 was a Thursday)
        diurnal = 0.55 + 0.45 * math.cos((hour - 15) / 24 * 2 * math.pi)
        return diurnal * (0.45 if weekday >= 5 else 1.0)

    def apply_incidents(self, t_rel: float) -> bool:
        """Set provider behaviour for simulated time ``t_rel``; False while usage is dropped."""
        b = self.behaviour
        active = {i.kind for i in self.incidents if i.active(t_rel)}
        b.output_factor = 12.0 if "cost_spike" in active else 1.0  # a runaway verbose model
        b.latency_factor = 4.0 if "latency" in active else 1.0
        b.error_rate = 0.35 if "errors" in active else 0.01
        b.rate_limit_rate = 0.05 if "errors" in active else 0.01
        return "usage_drop" not in active or self.rng.random() < 0.15

    def one_call(self) -> None:
        """One user interaction: maybe a session edge, a model call, maybe feedback and revenue."""
        user = self.rng.choices(list(self._user_feature), weights=self._user_weights)[0]
        profile = self._user_feature[user] if self.rng.random() < 0.8 else self.rng.choice(FEATURES)
        session_id = f"{user}-s{self.rng.randrange(4)}"
        with attribution(
            user_id=user,
            session_id=session_id,
            team=profile.team,
            project=profile.project,
            feature=profile.name,
        ):
            if self.rng.random() < 0.05:
                start_session(session_id)
                self.totals.sessions += 1
            track_feature(profile.name)
            request_id = self._call(profile)
            if request_id and self.rng.random() < 0.15:
                good = self.rng.random() < (0.8 if profile.prompt_words < 500 else 0.7)
                track_feedback(request_id, 5 if good else self.rng.choice((1, 2, 3)), scale=(1, 5))
                self.totals.feedback += 1
            if self.rng.random() < 0.002:
                plan, price = self._plans[user]
                if price:
                    track_revenue(user, price, plan)
            if self.rng.random() < 0.04:
                end_session(session_id)

    def _call(self, p: FeatureProfile) -> str | None:
        """Half the calls go through instrumented clients, half through the decorator (routed ones always)."""
        model = self.rng.choices([m for m, _ in p.models], weights=[w for _, w in p.models])[0]
        stream = self.rng.random() < p.stream_share
        words = int(self.rng.lognormvariate(math.log(p.prompt_words), 0.5))
        messages = [{"role": "user", "content": "word " * words}]
        routed = p.routed_from is not None and model != p.routed_from
        self.totals.calls += 1
        request_ids: list[str] = []
        try:
            if routed or self.direct or self.rng.random() < 0.5:

                def invoke() -> object:
                    request_ids.append(current_call().request_id)
                    if self.direct:
                        return self._invoke_direct(p, model=model, messages=messages, stream=stream)
                    return self._invoke(
                        self.raw_openai, self.raw_anthropic, p, model=model, messages=messages, stream=stream
                    )

                tracked = track_model_call(
                    model=model,
                    provider=p.provider,
                    routed=routed,
                    baseline_model=p.routed_from if routed else None,
                    router_confidence=round(self.rng.betavariate(8, 2), 3) if routed else None,
                )(invoke)
                result = tracked()
            else:
                result = self._invoke(
                    self.openai, self.anthropic, p, model=model, messages=messages, stream=stream
                )
            if stream:
                for _chunk in result:
                    pass
        except Exception:
            # Provider errors are part of the simulation; the telemetry recorded them.
            self.totals.errors += 1
            return None
        return request_ids[0] if request_ids else None

    def _invoke_direct(self, p: FeatureProfile, *, model: str, messages: list, stream: bool) -> object:
        if p.api == "messages":
            return self.providers.anthropic(model=model, messages=messages, stream=stream)
        responses = p.api == "responses"
        return self.providers.openai(
            model=model, messages=messages, stream=stream and not responses, responses=responses
        )

    @staticmethod
    def _invoke(
        openai: object, anthropic: object, p: FeatureProfile, *, model: str, messages: list, stream: bool
    ) -> object:
        if p.api == "messages":
            return anthropic.messages.create(model=model, max_tokens=1024, messages=messages, stream=stream)
        if p.api == "responses":
            return openai.responses.create(model=model, input=messages)
        if stream:
            return openai.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            )
        return openai.chat.completions.create(model=model, messages=messages)
