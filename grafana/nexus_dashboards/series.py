"""Series names the dashboards query, label filters, and shared PromQL expressions."""

from __future__ import annotations

# --- label filters ------------------------------------------------------------------
TP = 'nexus_team=~"$team", nexus_project=~"$project"'
TPM = f'{TP}, gen_ai_request_model=~"$model"'
M = 'gen_ai_request_model=~"$model"'

# --- recorded series (rules/recording.yml, rules/budgets.yml, rules/anomalies.yml) ----
REQ = "team_project_feature_provider_model:gen_ai_client_operations:rate5m"
ERR = "team_project_feature_provider_model:gen_ai_client_operation_errors:rate5m"
COST = "team_project_feature_provider_model:nexus_cost_usd:rate5m"
COST_TYPE = "provider_model_cost_type:nexus_cost_usd:rate5m"
COST_1D = "team_project_provider_model:nexus_cost_usd:increase1d"
TOKENS = "team_project_provider_model_token_type:gen_ai_client_token_usage_sum:rate5m"
DETAILED = "team_project_provider_model_detailed_token_type:nexus_tokens_detailed:rate5m"
SAVINGS = "team_project_provider_model:nexus_router_savings_usd:rate5m"
BASELINE = "team_project_provider_model:nexus_router_baseline_cost_usd:rate5m"
DECISIONS = "team_project_model_baseline_routed:nexus_router_decisions:rate5m"
LATENCY_Q = "provider_model:gen_ai_client_operation_duration_seconds:histogram_quantile"
LATENCY_B = "provider_model_le:gen_ai_client_operation_duration_seconds_bucket:rate5m"
TTFT_Q = "provider_model:gen_ai_client_operation_time_to_first_chunk_seconds:histogram_quantile"
ERR_RATIO_MODEL = "provider_model:gen_ai_client_operation_errors:ratio_rate5m"
ERR_TYPE = "provider_model_error_type:gen_ai_client_operation_errors:rate5m"
REQ_MODEL = "provider_model:gen_ai_client_operations:rate5m"
REQ_TP = "team_project:gen_ai_client_operations:rate5m"

# --- raw series (nexus_otel/semconv.py, as scraped) -------------------------------
DURATION = "gen_ai_client_operation_duration_seconds"
COST_RAW = "nexus_cost_usd_total"
BASELINE_RAW = "nexus_router_baseline_cost_usd_total"


def clean_expr(expr: str) -> str:
    lines = [line.rstrip() for line in expr.strip("\n").splitlines()]
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


# --- shared expressions -----------------------------------------------------------------
def per_hour(expr: str) -> str:
    return f"3600 * {expr}"


def savings_over_range(selector: str) -> str:
    return f"""
        sum(increase({BASELINE_RAW}{{{selector}}}[$__range]))
        - sum(increase({COST_RAW}{{{selector}, nexus_routed="true"}}[$__range]))
    """


def error_ratio(by: str, selector: str) -> str:
    """Failed share of requests; 0 (not "no data") where there is traffic but no error series."""
    return f"""
        (
            sum by ({by}) ({ERR}{{{selector}}})
          or
            0 * sum by ({by}) ({REQ}{{{selector}}})
        )
        / (sum by ({by}) ({REQ}{{{selector}}}) > 0)
    """


def uncached_input_price(by: str = "gen_ai_provider_name, gen_ai_request_model") -> str:
    """USD per uncached input token per model, from the recorded cost and token rates."""
    return f"""
        sum by ({by}) ({COST_TYPE}{{{M}, nexus_cost_type="input"}})
        /
        (
            sum by ({by}) ({TOKENS}{{{M}, gen_ai_token_type="input"}})
          - sum by ({by}) ({DETAILED}{{{M}, nexus_token_type=~"cache_.*"}})
          > 0
        )
    """


def cache_read_price(by: str = "gen_ai_provider_name, gen_ai_request_model") -> str:
    return f"""
        sum by ({by}) ({COST_TYPE}{{{M}, nexus_cost_type="cache_read"}})
        / (sum by ({by}) ({DETAILED}{{{M}, nexus_token_type="cache_read"}}) > 0)
    """


def cache_savings_rate() -> str:
    """USD/s saved by cache reads: cached tokens x (input price - cache-read price), per model."""
    pm = "gen_ai_provider_name, gen_ai_request_model"
    return f"""
        sum by ({pm}) ({DETAILED}{{{TPM}, nexus_token_type="cache_read"}})
        * on ({pm})
        (
            ({clean_expr(uncached_input_price())})
          - on ({pm})
            ({clean_expr(cache_read_price())})
        )
    """


USD_PER_HOUR = "currencyUSD"
