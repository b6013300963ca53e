"""Request and response bodies, named by role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.models import MESSAGE_MAX_CHARS, SPEAKER_MAX_CHARS, Memory, MemoryHit, Message, Role, SafeId, StoredType


class ErrorPublic(BaseModel):
    detail: str


class UnavailablePublic(BaseModel):
    detail: str
    component: str


# Documented on every route: what any of them can answer besides its own success and 422.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "the body is not valid JSON"},
    413: {"model": ErrorPublic, "description": "the request body is larger than MAX_BODY_BYTES"},
    503: {"model": UnavailablePublic, "description": "a dependency is down; retry after Retry-After seconds"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorPublic, "description": "clashes with stored data"}}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "missing or invalid credentials"}
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorPublic, "description": "the credential lacks the scope, or names another user"}
}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorPublic, "description": "over this credential's rate limit; retry after Retry-After seconds"}
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageCreate(Strict):
    role: Role
    text: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS)
    channel: SafeId = Field("whatsapp", max_length=64)
    created_at: AwareDatetime | None = Field(None, description="defaults to now; must carry a time zone")
    message_id: SafeId | None = Field(None, description="defaults to a generated id")
    speaker: SafeId | None = Field(
        None,
        max_length=SPEAKER_MAX_CHARS,
        description="who said it, as the conversation names them (the user's display name); "
        "episodes quote the turn under this name",
    )


class MessagePublic(BaseModel):
    id: str
    user_id: str
    character_name: str
    role: Role
    text: str
    channel: str
    created_at: datetime
    sync: bool
    speaker: str | None = None

    @classmethod
    def of(cls, message: Message) -> MessagePublic:
        return cls.model_validate(message.model_dump())


class MessageCreatedEvent(Strict):
    """What the Cloud Function (or any writer) reports after saving a message."""

    user_id: SafeId
    character_name: SafeId
    event_id: str | None = Field(None, max_length=256, description="idempotency key of the delivery")


class TriggerPublic(BaseModel):
    user_id: str
    character_name: str
    unsynced_count: int | None = Field(description="null when not counted, as a batch is running (batch_running)")
    threshold: int
    batch_started: bool
    batch_id: str | None
    # Present only when true, so every other answer keeps its shape.
    duplicate: bool = Field(
        False, exclude_if=lambda v: not v, description="the event id was delivered before; nothing was started"
    )
    batch_running: bool = Field(
        False,
        exclude_if=lambda v: not v,
        description="a batch of this process is running for the conversation: it takes the new messages next; "
        "nothing was counted or started",
    )


class MemoryPublic(BaseModel):
    id: str
    text: str
    type: StoredType
    importance: float
    score: float | None = None
    source_message_ids: list[str]
    occurred_at: datetime | None
    created_at: datetime
    channel: str | None
    batch_id: str

    @classmethod
    def of(cls, memory: Memory, score: float | None = None) -> MemoryPublic:
        return cls.model_validate({**memory.model_dump(), "score": score})

    @classmethod
    def of_hit(cls, hit: MemoryHit) -> MemoryPublic:
        return cls.of(hit.memory, round(hit.score, 4))


class SearchResults(BaseModel):
    query: str
    results: list[MemoryPublic]


class StatsPublic(BaseModel):
    user_id: str
    character_name: str
    total_memories: int = Field(description="extracted memories (every type but episode)")
    episodes: int = Field(description="stored three-turn windows of raw conversation")
    synced_messages: int
    unsynced_messages: int
    threshold: int
    last_batch: dict[str, Any] | None


class SweepPublic(BaseModel):
    scanned_messages: int
    quiet_conversations: int
    batches_started: list[str]
    errors: list[str]


class ComponentHealth(BaseModel):
    status: str
    latency_ms: float
    detail: str | None = None


class HealthPublic(BaseModel):
    status: str
    components: dict[str, ComponentHealth]


class ContextRequest(Strict):
    current_message: str = Field(max_length=MESSAGE_MAX_CHARS)
    channel: SafeId = Field("whatsapp", max_length=64)
    base_system_prompt: str = Field("", max_length=20_000)


class ContextPublic(BaseModel):
    prompt: str
    context: str
    memories: list[MemoryPublic]
    recent_turns: list[MessagePublic]
    tokens: int
    elapsed_ms: float
    degraded: bool
    reason: str | None
