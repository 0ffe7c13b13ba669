"""The labelling LLMs by name, and the one the settings choose."""

from .glm import GLMLabeler
from .llm import Labeler, OpenAICompatibleLabeler

PROVIDERS = {"glm": GLMLabeler, "openai": OpenAICompatibleLabeler}  # LLM_PROVIDER's choices


def labeler_from(settings, **options) -> Labeler:
    """The labeller the settings name (``LLM_PROVIDER``), for their endpoint and model; ``options`` go to its
    constructor (``timeout``, ``backoff``...)."""
    kind = PROVIDERS.get(settings.llm_provider, OpenAICompatibleLabeler)
    return kind(settings.llm_api_key, settings.llm_base_url, settings.llm_model,
                data_prefix=settings.llm_data_prefix, **options)
