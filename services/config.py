"""Recall's configuration: environment variables (or `.env`), read once through `get_settings()`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Firestore: the emulator when FIRESTORE_EMULATOR_HOST is set, real Firestore otherwise.
    google_cloud_project: str = "demo-recall"
    firestore_emulator_host: str | None = None

    # Batching.
    batch_threshold: int = Field(25, ge=1, description="unsynced messages that start a batch")
    batch_max_messages: int = Field(100, ge=1, le=400, description="messages claimed by one batch")
    batch_lease_seconds: float = Field(300.0, gt=0, description="how long a claim holds")
    batch_workers: int = Field(2, ge=1, description="batches run at once in one process")
    batch_retry_base_seconds: float = Field(5.0, ge=0, description="backoff after a batch's first failure")
    batch_retry_max_seconds: float = Field(300.0, ge=0, description="longest backoff between attempts")
    idle_flush_seconds: float = Field(900.0, gt=0, description="quiet period before a short conversation is flushed")
    sweep_interval_seconds: float = Field(60.0, ge=0, description="local periodic sweep under make run; 0: off")

    # Qdrant: a server when QDRANT_URL is set, Qdrant Edge under QDRANT_PATH otherwise.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_collection_name: str = "chat_memory"
    qdrant_vector_size: int | None = Field(None, description="must match the embedder when set")
    qdrant_connection_timeout: float = 30.0
    qdrant_path: Path = Path("./data/qdrant")

    # OpenAI (or any server speaking its wire format). Offline extractor and embedder without a key.
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int = 1536
    openai_timeout: float = 30.0
    openai_max_retries: int = Field(4, ge=0)

    # Context service.
    context_timeout_ms: int = Field(250, ge=1, description="time budget of one context call")
    context_token_budget: int = Field(400, ge=50, description="tokens of memory context in a prompt")
    context_memory_limit: int = Field(6, ge=1, le=50)
    context_recent_turns: int = Field(8, ge=0, le=50)
    # all-MiniLM-L6-v2 scores a first-person question against a third-person memory low (0.1-0.3).
    context_min_score: float = 0.1
    tiktoken_encoding: str = "o200k_base"

    # Local trigger: an on_snapshot listener inside the API process.
    listener_enabled: bool = True

    # The Cloud Function's shared secret: POST /firebase/message-created wants `Authorization: Bearer <it>`.
    # Unset (make run), the endpoint is open and the API warns at start-up.
    recall_trigger_secret: str | None = None

    @property
    def use_openai(self) -> bool:
        return bool(self.openai_api_key)


@lru_cache
def get_settings() -> Settings:
    return Settings()
