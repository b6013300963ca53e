"""Memory extraction with OpenAI chat completions (or a compatible server) and a strict JSON schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from services.config import Settings
from services.errors import ExtractionError
from services.models import Conversation, MemoryDraft, MemoryType
from services.openai_client import build_openai_client
from services.prompts import DATA_END, DATA_START, EXTRACTION_SYSTEM_PROMPT


class ExtractedMemory(BaseModel):
    """One memory as the model writes it; its constraints match MemoryDraft's."""

    model_config = ConfigDict(extra="forbid")

    # Only the text is stripped: a message id may begin or end with a space, and is cited exactly.
    text: Annotated[str, StringConstraints(strip_whitespace=True)] = Field(
        min_length=1, max_length=1000, description="A short third-person statement."
    )
    type: MemoryType
    # Strict: the schema says number, and lax mode would take `true` or "0.5" for one.
    importance: float = Field(ge=0.0, le=1.0, strict=True, description="0 trivial .. 1 essential.")
    source_message_ids: list[str] = Field(min_length=1, description="Ids of the messages it comes from.")
    occurred_at: datetime | None = Field(description="ISO 8601 date-time in UTC, or null.")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _a_string_or_null(cls, value: object) -> object:
        # Lax mode would read a number as a Unix time (123 -> 1970); strict mode would refuse a plain date.
        if value is not None and not isinstance(value, str):
            raise ValueError("must be an ISO 8601 string or null")
        return value


class ExtractionResult(BaseModel):
    """The whole reply: the memories of one batch, including exactly one summary."""

    model_config = ConfigDict(extra="forbid")

    memories: list[ExtractedMemory]


# Keywords OpenAI's strict mode accepts and that mean something here. Pydantic's titles, defaults,
# `format` and string lengths are dropped (strict mode rejects some of them); pydantic still checks
# every constraint of the model when the reply is parsed.
_STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "description",
        "minimum",
        "maximum",
        "minItems",
        "anyOf",
    }
)


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in OpenAI strict form: refs inlined, every property required, no extras."""
    raw = model.model_json_schema()
    return _strict(raw, raw.get("$defs", {}))


def _strict(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    node = _as_nullable_type(node)
    out = {key: value for key, value in node.items() if key in _STRICT_KEYWORDS}
    if "properties" in out:
        out["properties"] = {name: _strict(sub, defs) for name, sub in out["properties"].items()}
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    if "items" in out:
        out["items"] = _strict(out["items"], defs)
    if "anyOf" in out:
        out["anyOf"] = [_strict(sub, defs) for sub in out["anyOf"]]
    return out


def _as_nullable_type(node: dict[str, Any]) -> dict[str, Any]:
    # `X | None` comes out of pydantic as anyOf[X, null]; a ["string", "null"] type is the plainer form
    # strict mode documents for "required but may be null".
    options = node.get("anyOf", [])
    if len(options) != 2 or {"type": "null"} not in options:
        return node
    other = options[0] if options[1] == {"type": "null"} else options[1]
    if not isinstance(other.get("type"), str):
        return node
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    return {**other, **rest, "type": [other["type"], "null"]}


SCHEMA = strict_schema(ExtractionResult)
RESPONSE_FORMAT: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {"name": "memories", "strict": True, "schema": SCHEMA},
}


class OpenAIExtractor:
    """Extracts conversation-level memories with one chat completion per batch."""

    name = "openai"

    def __init__(self, client: openai.OpenAI, model: str, *, max_completion_tokens: int = 4096) -> None:
        self._client = client
        self._model = model
        # A cap keeps a runaway reply from burning the whole timeout; a cut-off reply is an error.
        self._max_completion_tokens = max_completion_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIExtractor:
        return cls(build_openai_client(settings), settings.openai_model)

    def extract(self, conversation: Conversation) -> list[MemoryDraft]:
        """Memories of `conversation`; ExtractionError on any failure, never an empty list."""
        if not conversation.messages:
            raise ExtractionError("cannot extract memories from a conversation without messages")
        return parse_memories(self._complete(conversation), conversation)

    def _complete(self, conversation: Conversation) -> str:
        try:
            # The SDK has already retried 429, 5xx, timeouts and connection errors when this raises.
            completion = self._client.chat.completions.create(
                model=self._model,
                messages=build_messages(conversation),
                temperature=0,
                response_format=RESPONSE_FORMAT,
                max_completion_tokens=self._max_completion_tokens,
            )
        except (openai.OpenAIError, json.JSONDecodeError) as exc:  # the SDK lets a non-JSON body through
            raise ExtractionError(f"OpenAI chat completion failed: {exc}") from exc
        return reply_content(completion)


def build_messages(conversation: Conversation) -> list[ChatCompletionMessageParam]:
    """The system prompt, then the conversation as JSON data between the delimiters."""
    rows = [
        {"id": m.id, "role": m.role, "timestamp": _utc(m.created_at).isoformat(), "text": m.text}
        | ({"speaker": m.speaker} if m.speaker else {})
        for m in conversation.messages
    ]
    # Escaping < and > keeps the JSON identical in meaning while making DATA_END impossible inside it.
    data = json.dumps(rows, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    user = f"Extract memories from this conversation.\n{DATA_START}\n{data}\n{DATA_END}"
    return [{"role": "system", "content": EXTRACTION_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def reply_content(completion: ChatCompletion) -> str:
    """The JSON text of the first choice, or ExtractionError if the model did not answer in full."""
    try:
        choice = completion.choices[0]
        message, finish_reason = choice.message, choice.finish_reason
        refusal, content = message.refusal, message.content
    except (AttributeError, IndexError, TypeError) as exc:  # the SDK does not validate response shapes
        raise ExtractionError("the chat completion has no usable choice") from exc
    if refusal:
        raise ExtractionError(f"the model refused to extract memories: {refusal:.200}")
    if finish_reason == "length":
        raise ExtractionError("the model's reply was cut off at the token limit")
    if finish_reason == "content_filter":
        raise ExtractionError("the model's reply was stopped by the content filter")
    if not content or not content.strip():
        raise ExtractionError(f"the model's reply is empty (finish_reason={finish_reason!r})")
    return content


def parse_memories(content: str, conversation: Conversation) -> list[MemoryDraft]:
    """The drafts in a reply's JSON text, citing only `conversation`'s messages; else ExtractionError."""
    return to_drafts(parse_reply(content), conversation)


def parse_reply(content: str) -> ExtractionResult:
    """Validate the reply against ExtractionResult; errors name fields, never the user's text."""
    try:
        return ExtractionResult.model_validate_json(content)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise ExtractionError(f"the model's reply is not valid JSON: {errors[0]['msg']}") from exc
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        raise ExtractionError(f"the model's reply does not match the memory schema: {details}") from exc


def to_drafts(result: ExtractionResult, conversation: Conversation) -> list[MemoryDraft]:
    """MemoryDrafts of a parsed reply, after checking its ids and its summary against the batch."""
    known = {m.id for m in conversation.messages}
    cited = {mid for memory in result.memories for mid in memory.source_message_ids}
    unknown = sorted(cited - known)
    if unknown:
        # A wrong id would tie a memory to a message that never gets it deleted or re-extracted.
        raise ExtractionError(f"the model cited {len(unknown)} unknown message ids, e.g. {unknown[:3]}")
    if not any(memory.type == "summary" for memory in result.memories):
        raise ExtractionError(f"the model's reply has no summary memory ({len(result.memories)} memories)")
    try:
        return [_draft(memory) for memory in result.memories]
    except ValidationError as exc:
        raise ExtractionError(f"a memory is not a valid MemoryDraft: {exc.error_count()} errors") from exc
    except OverflowError as exc:  # an offset that moves a time past year 1 or 9999 when made UTC
        raise ExtractionError("a memory's occurred_at is out of range in UTC") from exc


def _draft(memory: ExtractedMemory) -> MemoryDraft:
    return MemoryDraft(
        text=memory.text,
        type=memory.type,
        importance=memory.importance,
        source_message_ids=list(dict.fromkeys(memory.source_message_ids)),
        occurred_at=_utc(memory.occurred_at) if memory.occurred_at else None,
    )


def _utc(moment: datetime) -> datetime:
    # Naive times are taken as UTC, the convention of the prompt and of stored messages.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
