"""The metric contract: every instrument, attribute and event name nexus-otel emits.

Rules (``rules/``), dashboards (``grafana/``), the collector (``exporters/``) and the
recommender all depend on these names, so they are defined here once. The GenAI
names come from ``opentelemetry-semantic-conventions``; what the conventions lack
lives under ``nexus.``. ``tests/test_metric_contract.py`` pins the Prometheus names
as scraped, and the README's metric reference is generated from :data:`METRICS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server

__all__ = [
    "ATTRIBUTION_LABELS",
    "COST_TYPES",
    "DETAILED_TOKEN_TYPES",
    "DURATION_BUCKETS",
    "EVENT_NAMES",
    "METRICS",
    "TOKEN_BUCKETS",
    "MetricSpec",
    "prometheus_name",
]

# --- attributes -------------------------------------------------------------
OPERATION: Final = _gen_ai.GEN_AI_OPERATION_NAME  # gen_ai.operation.name
PROVIDER: Final = _gen_ai.GEN_AI_PROVIDER_NAME  # gen_ai.provider.name
REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL  # gen_ai.request.model
RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL  # gen_ai.response.model
TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE  # gen_ai.token.type (input | output)
ERROR_TYPE: Final = _error.ERROR_TYPE  # error.type
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS  # server.address

TEAM: Final = "nexus.team"
PROJECT: Final = "nexus.project"
FEATURE: Final = "nexus.feature"
OUTCOME: Final = "nexus.outcome"  # success | error
ROUTED: Final = "nexus.routed"  # "true" | "false"
BASELINE_MODEL: Final = "nexus.router.baseline_model"
DETAILED_TOKEN_TYPE: Final = "nexus.token.type"
COST_TYPE: Final = "nexus.cost.type"
PLAN: Final = "nexus.plan"
LABEL: Final = "nexus.label"  # which attribution label was folded
DROP_REASON: Final = "nexus.drop.reason"
SESSION_STATE: Final = "nexus.session.state"  # started | ended
ERROR_STAGE: Final = "nexus.error.stage"  # where our own recording failed

#: Labels a user may attribute metrics by. Each is capped (see ``cardinality``).
#: User and session ids are deliberately absent: they go to events and the rollup.
ATTRIBUTION_LABELS: Final = (REQUEST_MODEL, RESPONSE_MODEL, PROVIDER, OPERATION, FEATURE, TEAM, PROJECT)

OUTCOME_SUCCESS: Final = "success"
OUTCOME_ERROR: Final = "error"
FOLDED_VALUE: Final = "other"

#: Subsets of input or output tokens; never added on top of them.
DETAILED_TOKEN_TYPES: Final = ("cache_read", "cache_write_5m", "cache_write_1h", "reasoning")
#: Every billed token is priced exactly once under one of these.
COST_TYPES: Final = ("input", "cache_read", "cache_write", "output", "reasoning")

# --- bucket boundaries (recommended by the GenAI conventions) ---------------
DURATION_BUCKETS: Final = tuple(round(0.01 * 2**i, 2) for i in range(14))  # 0.01 … 81.92
TOKEN_BUCKETS: Final = tuple(4**i for i in range(14))  # 1 … 67108864
CONFIDENCE_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
FEEDBACK_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One instrument: its OpenTelemetry name and how Prometheus shows it."""

    name: str
    kind: Literal["histogram", "counter", "gauge"]
    unit: str
    description: str
    attributes: tuple[str, ...]
    buckets: tuple[float, ...] | None = None

    @property
    def prometheus(self) -> str:
        return prometheus_name(self.name, self.unit, self.kind)


def prometheus_name(name: str, unit: str, kind: str) -> str:
    """The series name the OpenTelemetry→Prometheus compatibility rules give.

    Dots become underscores, a non-annotation unit is appended (``s`` → ``seconds``),
    ``{…}`` annotations and ``1`` add nothing, counters end in ``_total``.
    """
    base = name.replace(".", "_").replace("-", "_")
    suffix = {"s": "seconds", "By": "bytes", "ms": "milliseconds"}.get(unit, "")
    if suffix and not base.endswith(suffix):
        base = f"{base}_{suffix}"
    if kind == "counter" and not base.endswith("_total"):
        base = f"{base}_total"
    return base


_CALL = (OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, SERVER_ADDRESS, FEATURE, TEAM, PROJECT)

OPERATION_DURATION = MetricSpec(
    _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
    "histogram",
    "s",
    "GenAI operation duration.",
    (*_CALL, OUTCOME, ROUTED, ERROR_TYPE),
    DURATION_BUCKETS,
)
TOKEN_USAGE = MetricSpec(
    _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
    "histogram",
    "{token}",
    "Number of input and output tokens used (billable; input includes cached, output includes reasoning).",
    (*_CALL, TOKEN_TYPE, ROUTED),
    TOKEN_BUCKETS,
)
TIME_TO_FIRST_CHUNK = MetricSpec(
    _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
    "histogram",
    "s",
    "Time from issuing a streamed request to receiving its first chunk.",
    (*_CALL, ROUTED),
    DURATION_BUCKETS,
)
TOKENS_DETAILED = MetricSpec(
    "nexus.tokens.detailed",
    "counter",
    "{token}",
    "Tokens by detailed type; each type is a subset of input (cache_*) or output (reasoning) tokens.",
    (*_CALL, DETAILED_TOKEN_TYPE),
)
COST = MetricSpec(
    "nexus.cost.usd",
    "counter",
    "{USD}",
    "Cost in US dollars, priced once per token at record time, split by cost type.",
    (*_CALL, COST_TYPE, ROUTED),
)
ROUTER_BASELINE_COST = MetricSpec(
    "nexus.router.baseline_cost.usd",
    "counter",
    "{USD}",
    "What routed calls would have cost on their baseline model; savings = baseline - actual.",
    (*_CALL, BASELINE_MODEL),
)
ROUTER_DECISIONS = MetricSpec(
    "nexus.router.decisions",
    "counter",
    "{decision}",
    "Smart-router decisions by baseline and chosen model.",
    (PROVIDER, REQUEST_MODEL, BASELINE_MODEL, FEATURE, TEAM, PROJECT, ROUTED),
)
ROUTER_CONFIDENCE = MetricSpec(
    "nexus.router.confidence",
    "histogram",
    "1",
    "Confidence the smart router reported for its decision (0..1).",
    (PROVIDER, REQUEST_MODEL, BASELINE_MODEL, FEATURE, TEAM, PROJECT),
    CONFIDENCE_BUCKETS,
)
FEATURE_USAGE = MetricSpec(
    "nexus.feature.usage",
    "counter",
    "{use}",
    "Uses of a product feature.",
    (FEATURE, TEAM, PROJECT),
)
FEEDBACK_SCORE = MetricSpec(
    "nexus.feedback.score",
    "histogram",
    "1",
    "User feedback score normalised to 0..1.",
    (REQUEST_MODEL, PROVIDER, FEATURE, TEAM, PROJECT),
    FEEDBACK_BUCKETS,
)
REVENUE = MetricSpec(
    "nexus.revenue.usd",
    "counter",
    "{USD}",
    "Revenue in US dollars attributed to the product.",
    (PLAN, TEAM, PROJECT),
)
SESSIONS = MetricSpec(
    "nexus.sessions",
    "counter",
    "{session}",
    "User sessions started and ended.",
    (SESSION_STATE, FEATURE, TEAM, PROJECT),
)
PRICING_MISSES = MetricSpec(
    "nexus.pricing.misses",
    "counter",
    "{call}",
    "Calls whose model has no price: no cost was guessed for them.",
    (PROVIDER, REQUEST_MODEL, RESPONSE_MODEL),
)
EVENTS_DROPPED = MetricSpec(
    "nexus.events.dropped",
    "counter",
    "{event}",
    "Events dropped before export (queue full, export failure).",
    (DROP_REASON,),
)
LABELS_FOLDED = MetricSpec(
    "nexus.labels.folded",
    "counter",
    "{value}",
    "Attribution label values folded into 'other' by the cardinality cap.",
    (LABEL,),
)
EVENTS_QUEUED = MetricSpec(
    "nexus.events.queued",
    "gauge",
    "{event}",
    "Events waiting in the in-process queue for export.",
    (),
)
INSTRUMENTATION_ERRORS = MetricSpec(
    "nexus.instrumentation.errors",
    "counter",
    "{error}",
    "Failures inside nexus-otel's own recording; the wrapped call was not affected.",
    (ERROR_STAGE,),
)

METRICS: Final = (
    OPERATION_DURATION,
    TOKEN_USAGE,
    TIME_TO_FIRST_CHUNK,
    TOKENS_DETAILED,
    COST,
    ROUTER_BASELINE_COST,
    ROUTER_DECISIONS,
    ROUTER_CONFIDENCE,
    FEATURE_USAGE,
    FEEDBACK_SCORE,
    REVENUE,
    SESSIONS,
    PRICING_MISSES,
    EVENTS_DROPPED,
    LABELS_FOLDED,
    EVENTS_QUEUED,
    INSTRUMENTATION_ERRORS,
)

# --- events -------------------------------------------------------------------
EVENT_MODEL_CALL: Final = "nexus.model_call"
EVENT_FEATURE_USE: Final = "nexus.feature_use"
EVENT_FEEDBACK: Final = "nexus.feedback"
EVENT_REVENUE: Final = "nexus.revenue"
EVENT_SESSION: Final = "nexus.session"
EVENT_NAMES: Final = (EVENT_MODEL_CALL, EVENT_FEATURE_USE, EVENT_FEEDBACK, EVENT_REVENUE, EVENT_SESSION)

INSTRUMENTATION_SCOPE: Final = "nexus_otel"
