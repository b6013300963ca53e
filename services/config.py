"""Recall's configuration: environment variables (or `.env`), read once through `get_settings()`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["read", "write", "trigger", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "trigger", "admin")


class ApiKeyEntry(BaseModel):
    """One service key as configured: its name, the sha256 of the key (never the key) and its scopes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the key, as scripts/api_key.py prints")
    scopes: list[Scope] = Field(min_length=1)
    rate_per_minute: int | None = Field(None, ge=0, description="overrides RATE_LIMIT_PER_MINUTE; 0: unlimited")


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
    qdrant_api_key: SecretStr | None = None
    qdrant_collection_name: str = "chat_memory"
    qdrant_vector_size: int | None = Field(None, description="must match the embedder when set")
    qdrant_connection_timeout: float = 30.0
    qdrant_path: Path = Path("./data/qdrant")

    # OpenAI (or any server speaking its wire format). Offline extractor and embedder without a key.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str = "text-embedding-3-small"
    openai_embedding_dimensions: int = 1536
    openai_timeout: float = 30.0
    openai_max_retries: int = Field(4, ge=0)

    # The offline embedder's ONNX export of all-MiniLM-L6-v2 (`make install` makes it, or the first start).
    recall_model_dir: Path = Path(__file__).resolve().parent.parent / ".cache" / "models"

    # Episodes: each batch also stores its turns three at a time (services/episodes.py). They are most of
    # what the offline embedder computes; off, the context is built from extracted memories alone.
    episodes_enabled: bool = True

    # Context service.
    context_timeout_ms: int = Field(250, ge=1, description="time budget of one context call")
    context_token_budget: int = Field(400, ge=50, description="tokens of memory context in a prompt")
    context_memory_limit: int = Field(6, ge=1, le=50)
    # Quoted three-turn windows considered for text channels (voice takes none); 0 turns them off.
    context_episode_limit: int = Field(10, ge=0, le=50)
    # The share of the token budget episodes fill before the extracted memories (BENCHMARKS.md chose it).
    context_episode_share: float = Field(0.6, ge=0.0, le=1.0)
    context_recent_turns: int = Field(8, ge=0, le=50)
    # Conversations whose recent turns a Firestore listener keeps in this process after their first context
    # call (services/recent_turns.py), so later calls make no round trip; 0 reads on every call. Each listener
    # is a stream on the Firestore client's one connection, and Google's front ends allow 100 concurrent
    # streams on a connection: past that every call of the client waits, so leave room for the reads,
    # commits and the trigger's own listener.
    context_live_conversations: int = Field(64, ge=0, le=80)
    context_live_idle_seconds: float = Field(600.0, gt=0, description="a listener unused this long is closed")
    # all-MiniLM-L6-v2 scores a first-person question against a third-person memory low (0.1-0.3).
    context_min_score: float = 0.1
    tiktoken_encoding: str = "o200k_base"

    # Local trigger: an on_snapshot listener inside the API process.
    listener_enabled: bool = True

    # Access (README "Security"). Every endpoint but health wants `Authorization: Bearer <credential>`.
    # The Cloud Function's shared secret: the only credential POST /firebase/message-created accepts.
    recall_trigger_secret: SecretStr | None = None
    # Service keys: a JSON list of ApiKeyEntry in RECALL_API_KEYS, and/or in the file RECALL_API_KEYS_FILE.
    recall_api_keys: list[ApiKeyEntry] = Field(default_factory=list)
    recall_api_keys_file: Path | None = None
    # A full-scope key in plain text, for local development only: refused unless Firestore is the emulator.
    recall_dev_api_key: SecretStr | None = Field(None, min_length=16)
    # Firebase ID tokens of end users, verified with firebase-admin; each may touch only its own user_id.
    firebase_auth_enabled: bool = True
    # Calls per minute per credential on each of the read (search, stats, context) and write endpoints.
    rate_limit_per_minute: int = Field(6000, ge=0, description="per service key; 0: unlimited")
    rate_limit_user_per_minute: int = Field(120, ge=0, description="per end user (Firebase ID token); 0: unlimited")
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="larger request bodies are refused with 413")

    @property
    def use_openai(self) -> bool:
        return bool(self.openai_api_key)

    def secret_values(self) -> list[str]:
        """The plain values of every secret setting, for services.redact."""
        secrets = (self.openai_api_key, self.qdrant_api_key, self.recall_trigger_secret, self.recall_dev_api_key)
        return [s.get_secret_value() for s in secrets if s is not None]


@lru_cache
def get_settings() -> Settings:
    return Settings()
