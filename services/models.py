"""The data Recall moves around: messages in, memories out."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.errors import InvalidInputError

# A user id or character name becomes one Firestore path segment: no '/', no control characters (C0,
# DEL and C1), not '.' or '..', not the reserved '__name__' form, and short enough to stay readable.
ID_MAX_LENGTH = 128
# The schema pattern (pydantic's regex engine has no look-around); the reserved names are refused by
# `check_id`, which every path goes through. Both are written so that `$` and `.` mean the same in
# ECMA-262 (JSON Schema), Rust (pydantic) and Python regexes: the class excludes every line break `$`
# could stop before, and "any character" is `[\s\S]`, not `.`.
ID_PATTERN = r"^[^/\x00-\x1f\x7f-\x9f]{1,128}$"
# fullmatch, not match: `$` in Python also matches before a final newline, and "abc\n" slipped through.
# Lone surrogates are refused too: they cannot be encoded as UTF-8, so Firestore could not store them.
_ID_RE = re.compile(r"(?!\.\.?\Z)(?!__[\s\S]*__\Z)[^/\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,128}")
# The reserved names in JSON Schema terms, so that the published spec refuses what check_id refuses.
ID_RESERVED_SCHEMA: dict[str, object] = {"not": {"anyOf": [{"enum": [".", ".."]}, {"pattern": r"^__[\s\S]*__$"}]}}
_ID_RULE = (
    f"1-{ID_MAX_LENGTH} characters of valid Unicode with no '/', no control characters, and not '.', '..' or '__...__'"
)

MESSAGE_MAX_CHARS = 8000
SPEAKER_MAX_CHARS = 64

Role = Literal["user", "assistant"]
MemoryType = Literal["fact", "preference", "event", "relationship", "plan", "emotion", "summary"]
# What a stored point holds: an extracted memory of one of those types, or an episode (three raw turns,
# services/episodes.py), which no extractor proposes.
StoredType = Literal["fact", "preference", "event", "relationship", "plan", "emotion", "summary", "episode"]

# Point ids are UUIDv5 under this namespace, so a retried batch writes the same ids again.
MEMORY_NAMESPACE = uuid.UUID("5b0c1b8e-3f7a-4d0e-9a51-6f2d7c0e4a11")


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def check_id(value: str, what: str = "id") -> str:
    """Return `value` if it is a safe single path segment, else raise InvalidInputError."""
    if not is_valid_id(value):
        raise InvalidInputError(f"{what} must be {_ID_RULE}; got {value!r:.80}")
    return value


def check_path_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"must be {_ID_RULE}")
    return value


SafeId = Annotated[
    str,
    Field(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH, json_schema_extra=ID_RESERVED_SCHEMA),
    AfterValidator(check_path_id),
]


class Message(BaseModel):
    """One chat turn as stored in Firestore."""

    id: str
    user_id: str
    character_name: str
    role: Role
    text: str
    channel: str = "whatsapp"
    created_at: datetime
    sync: bool = False
    # Who said it, as the conversation names them ("Maya", the character's name); None when not given.
    speaker: str | None = None


class MemoryDraft(BaseModel):
    """A memory as an extractor proposes it, before it is embedded and stored."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    type: MemoryType
    importance: float = Field(ge=0.0, le=1.0)
    source_message_ids: list[str] = Field(min_length=1)
    occurred_at: datetime | None = None


class Memory(BaseModel):
    """A stored memory: a draft plus where it belongs and where it came from."""

    id: str
    user_id: str
    character_name: str
    text: str
    type: StoredType
    importance: float
    source_message_ids: list[str]
    occurred_at: datetime | None = None
    created_at: datetime
    batch_id: str
    channel: str | None = None

    @staticmethod
    def point_id(batch_id: str, index: int) -> str:
        return str(uuid.uuid5(MEMORY_NAMESPACE, f"{batch_id}:{index}"))

    def payload(self) -> dict[str, object]:
        data = self.model_dump(mode="json", exclude={"id"})
        data["created_ts"] = self.created_at.timestamp()
        return data

    @classmethod
    def from_payload(cls, point_id: str, payload: dict[str, object]) -> Memory:
        return cls.model_validate({**payload, "id": point_id})


class MemoryHit(BaseModel):
    """A memory found by a search, with its similarity to the query."""

    memory: Memory
    score: float


class Conversation(BaseModel):
    """The messages of one batch, oldest first, for one user and character."""

    user_id: str
    character_name: str
    messages: list[Message]
