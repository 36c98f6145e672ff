"""nexus-otel: cost, token, latency and usage telemetry for AI/LLM calls.

Wrap model calls with :func:`track_model_call` (decorator or context manager)
or instrument a client instance with :func:`instrument_openai` /
:func:`instrument_anthropic`. Metrics go through the OpenTelemetry API (your
SDK), or through the SDK that :func:`configure` sets up.

Importing this package loads only the OpenTelemetry API, the semantic
conventions and PyYAML; everything heavier loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .attribution import attribution  # eager: the module shares the function's name
from .version import __version__

__all__ = [
    "CallRecord",
    "Usage",
    "__version__",
    "attribution",
    "configure",
    "current_call",
    "end_session",
    "get_recorder",
    "instrument_anthropic",
    "instrument_openai",
    "session",
    "shutdown",
    "start_session",
    "track_feature",
    "track_feedback",
    "track_model_call",
    "track_revenue",
]

# name -> module that defines it; imported on first attribute access so that
# `import nexus_otel` stays cheap (measured in benchmarks/).
_EXPORTS = {
    "CallRecord": ".record",
    "Usage": ".usage",
    "configure": ".telemetry",
    "shutdown": ".telemetry",
    "current_call": ".tracking",
    "track_model_call": ".tracking",
    "get_recorder": ".recorder",
    "instrument_openai": ".integrations.openai",
    "instrument_anthropic": ".integrations.anthropic",
    "track_feature": ".business",
    "track_feedback": ".business",
    "track_revenue": ".business",
    "start_session": ".business",
    "end_session": ".business",
    "session": ".business",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nexus_otel' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .business import end_session, session, start_session, track_feature, track_feedback, track_revenue
    from .integrations.anthropic import instrument_anthropic
    from .integrations.openai import instrument_openai
    from .record import CallRecord
    from .recorder import get_recorder
    from .telemetry import configure, shutdown
    from .tracking import current_call, track_model_call
    from .usage import Usage
