"""The one place an OpenAI client is built: key, base URL (Ollama, vLLM, ...), timeout and retries."""

from __future__ import annotations

from openai import OpenAI

from services.config import Settings


def build_openai_client(settings: Settings) -> OpenAI:
    # The SDK retries connection errors, timeouts, 408, 409, 429 and 5xx with exponential backoff
    # and honours Retry-After, so neither the extractor nor the embedder loops on its own.
    key = settings.openai_api_key
    return OpenAI(
        api_key=key.get_secret_value() if key else None,
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout,
        max_retries=settings.openai_max_retries,
    )
