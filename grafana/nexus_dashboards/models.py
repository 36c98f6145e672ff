"""The models dashboard."""

from __future__ import annotations

from .model import (
    Dashboard,
    Panel,
    Target,
    table,
    thresholds,
    timeseries,
    value_columns,
)
from .series import (
    COST,
    ERR_RATIO_MODEL,
    ERR_TYPE,
    LATENCY_Q,
    REQ,
    TOKENS,
    TPM,
    TTFT_Q,
    M,
)


# --- 3. models ------------------------------------------------------------------------
def models() -> Dashboard:
    by_model = "gen_ai_request_model"
    feedback = f"""
        sum by (gen_ai_request_model) (increase(nexus_feedback_score_sum{{{TPM}}}[1h]))
        / sum by (gen_ai_request_model) (increase(nexus_feedback_score_count{{{TPM}}}[1h]))
    """
    tokens_per_request = f"""
        sum by (gen_ai_request_model) ({TOKENS}{{{TPM}}})
        / sum by (gen_ai_request_model) ({REQ}{{{TPM}}})
    """
    cost_per_request = f"""
        sum by (gen_ai_request_model) ({COST}{{{TPM}}})
        / sum by (gen_ai_request_model) ({REQ}{{{TPM}}})
    """
    return Dashboard(
        "nexus-models",
        "nexus-otel / Models",
        "Per model: usage, latency and time to first token, errors, tokens and cost per request, "
        "user feedback, and a comparison table.",
        ["models"],
        [
            Panel(
                "piechart",
                "Requests by model",
                "Share of the current request rate per requested model.",
                [Target(f"sum by ({by_model}) ({REQ}{{{TPM}}})", "{{gen_ai_request_model}}", instant=True)],
                "reqps",
                w=8,
            ),
            timeseries(
                "Requests per second by model",
                "Request rate per model (5-minute rate).",
                Target(f"sum by ({by_model}) ({REQ}{{{TPM}}})", "{{gen_ai_request_model}}"),
                unit="reqps",
                w=16,
            ),
            timeseries(
                "Call duration p50 / p95 / p99 by model",
                "Duration quantiles of successful calls per model (all teams: the recorded quantiles are "
                "per provider and model).",
                Target(f'{LATENCY_Q}{{{M}, quantile="0.5"}}', "{{gen_ai_request_model}} p50"),
                Target(f'{LATENCY_Q}{{{M}, quantile="0.95"}}', "{{gen_ai_request_model}} p95"),
                Target(f'{LATENCY_Q}{{{M}, quantile="0.99"}}', "{{gen_ai_request_model}} p99"),
                unit="s",
            ),
            timeseries(
                "Time to first token p50 / p95 by model",
                "Time from a streamed request to its first chunk (streamed calls only).",
                Target(f'{TTFT_Q}{{{M}, quantile="0.5"}}', "{{gen_ai_request_model}} p50"),
                Target(f'{TTFT_Q}{{{M}, quantile="0.95"}}', "{{gen_ai_request_model}} p95"),
                unit="s",
            ),
            timeseries(
                "Error rate by model",
                "Share of failed calls per model (0 when a model has traffic and no errors).",
                Target(f"{ERR_RATIO_MODEL}{{{M}}}", "{{gen_ai_request_model}}"),
                unit="percentunit",
                min=0,
            ),
            timeseries(
                "Errors per second by type",
                "Failed calls per model and error type (HTTP status class or exception).",
                Target(
                    f"sum by ({by_model}, error_type) ({ERR_TYPE}{{{M}}})",
                    "{{gen_ai_request_model}} {{error_type}}",
                ),
                unit="reqps",
            ),
            timeseries(
                "Tokens per request by model",
                "Billable input and output tokens per call (input includes cached, output reasoning).",
                Target(
                    f"""
                    sum by ({by_model}, gen_ai_token_type) ({TOKENS}{{{TPM}}})
                    / on ({by_model}) group_left ()
                    sum by ({by_model}) ({REQ}{{{TPM}}})
                    """,
                    "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                ),
                unit="short",
            ),
            timeseries(
                "Cost per request by model",
                "USD per call of each model (5-minute rates).",
                Target(cost_per_request, "{{gen_ai_request_model}}"),
                unit="currencyUSD",
            ),
            timeseries(
                "Feedback score by model",
                "Mean user feedback (0..1) over the trailing hour, per model.",
                Target(feedback, "{{gen_ai_request_model}}"),
                unit="percentunit",
                min=0,
                max=1,
            ),
            Panel(
                "bargauge",
                "Feedback score, trailing hour",
                "Mean user feedback (0..1) per model over the last hour.",
                [Target(feedback, "{{gen_ai_request_model}}", instant=True)],
                "percentunit",
                min=0,
                max=1,
                steps=thresholds((None, "red"), (0.6, "yellow"), (0.75, "green")),
            ),
            table(
                "Model comparison",
                "Current rates per model: requests, p95 duration, error rate, tokens and cost per call, "
                "and feedback over the last hour.",
                Target(f"sum by ({by_model}) ({REQ}{{{TPM}}})"),
                Target(f'max by ({by_model}) ({LATENCY_Q}{{{M}, quantile="0.95"}})'),
                Target(f"max by ({by_model}) ({ERR_RATIO_MODEL}{{{M}}})"),
                Target(tokens_per_request),
                Target(cost_per_request),
                Target(feedback),
                rename={
                    "gen_ai_request_model": "Model",
                    "Value #A": "Requests/s",
                    "Value #B": "p95 duration",
                    "Value #C": "Error rate",
                    "Value #D": "Tokens/request",
                    "Value #E": "USD/request",
                    "Value #F": "Feedback",
                },
                w=24,
                overrides=value_columns(
                    {
                        "Requests/s": "reqps",
                        "p95 duration": "s",
                        "Error rate": "percentunit",
                        "Tokens/request": "short",
                        "USD/request": "currencyUSD",
                        "Feedback": "percentunit",
                    }
                ),
            ),
        ],
    )
