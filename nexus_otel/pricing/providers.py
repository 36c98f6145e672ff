"""Provider names: OpenTelemetry ``gen_ai.provider.name`` values and the spellings gateways use."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues

__all__ = ["LITELLM_PROVIDERS", "OTEL_PROVIDERS", "provider_from_prefix"]

#: Every ``gen_ai.provider.name`` value the semantic conventions define.
OTEL_PROVIDERS: frozenset[str] = frozenset(v.value for v in GenAiProviderNameValues)

#: LiteLLM ``litellm_provider`` (and model-name prefix) → ``gen_ai.provider.name``.
LITELLM_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex_ai-language-models": "gcp.vertex_ai",
    "vertex_ai-anthropic_models": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "groq": "groq",
    "xai": "x_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
}


def provider_from_prefix(prefix: str) -> str | None:
    """The provider a ``prefix/model`` name (LiteLLM, OpenRouter style) points at, if known."""
    prefix = prefix.lower()
    if prefix in OTEL_PROVIDERS:
        return prefix
    return LITELLM_PROVIDERS.get(prefix)
