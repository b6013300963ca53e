"""The OpenAI extractor's reply parsing, checked by its properties (hypothesis).

Whatever text the model sends back, `parse_memories` either returns valid MemoryDrafts that cite only the
batch's messages, or raises ExtractionError: never another exception, never a foreign id. A reply that
follows the schema is always accepted, as written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openai import OpenAI

from services.errors import ExtractionError
from services.models import Conversation, MemoryDraft, MemoryType, Message
from services.openai_extractor import OpenAIExtractor, parse_memories
from tests.support.openai_wire import OpenAIWireServer, chat

BOUNDED = settings(max_examples=300, deadline=None, derandomize=True)
T0 = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)
IDS = ["m0", "m1", "m2", " Zx9 ün ", "__m__x"]  # ids may begin and end with a space
TYPES = list(get_args(MemoryType))
CONVERSATION = Conversation(
    user_id="u1",
    character_name="luna",
    messages=[
        Message(id=mid, user_id="u1", character_name="luna", role="user", text=f"text {i}", created_at=T0)
        for i, mid in enumerate(IDS)
    ],
)

# pydantic strips Unicode White_Space, which unlike str.isspace leaves out the separators U+001C-U+001F.
WHITE_SPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c not in "\x1c\x1d\x1e\x1f")
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
timezones = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59))


# --- replies that follow the schema -----------------------------------------------------------------


ANY_TYPE = st.sampled_from(TYPES)


@st.composite
def valid_memory(draw: st.DrawFn, kind: st.SearchStrategy[str] = ANY_TYPE) -> dict[str, Any]:
    text = draw(st.text(min_size=1, max_size=1000).filter(lambda t: t.strip(WHITE_SPACE)))
    moment = draw(st.none() | st.datetimes(timezones=timezones).map(datetime.isoformat))
    return {
        "text": text,
        "type": draw(kind),
        "importance": draw(st.floats(0, 1) | st.sampled_from([0, 1])),
        "source_message_ids": draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=6)),
        "occurred_at": moment,
    }


valid_reply = st.builds(
    lambda memories, summary, at: {"memories": [*memories[:at], summary, *memories[at:]]},
    st.lists(valid_memory(), max_size=4),
    valid_memory(st.just("summary")),
    st.integers(0, 4),
)


def expected_occurred_at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


@BOUNDED
@given(valid_reply)
def test_a_reply_that_follows_the_schema_is_kept_as_written(reply: dict[str, Any]) -> None:
    try:
        drafts = parse_memories(json.dumps(reply, ensure_ascii=False), CONVERSATION)
    except ExtractionError as exc:
        # The one legitimate refusal: a valid offset that moves the time outside years 1-9999 in UTC.
        assert "out of range" in str(exc)
        assert any(
            datetime.fromisoformat(m["occurred_at"]).year in (1, 9999) for m in reply["memories"] if m["occurred_at"]
        )
        return
    assert [(d.text, d.type, d.importance) for d in drafts] == [
        (m["text"].strip(WHITE_SPACE), m["type"], m["importance"]) for m in reply["memories"]
    ]
    for draft, memory in zip(drafts, reply["memories"], strict=True):
        assert draft.source_message_ids == list(dict.fromkeys(memory["source_message_ids"]))
        assert draft.occurred_at == expected_occurred_at(memory["occurred_at"])


# --- anything at all ------------------------------------------------------------------------------------


def mutate(memory: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    return {**memory, field: value} if value is not DROP else {k: v for k, v in memory.items() if k != field}


DROP = object()
wrong_values = st.one_of(
    json_values,
    st.just(DROP),
    st.sampled_from([math.nan, math.inf, -0.0, 1.0000001, -1e-9, True, "0.5", 123, "", " ", "\u3000"]),
    st.text(min_size=999, max_size=1003),  # around the text limit
    st.just("x" * 100_000),
    st.lists(st.text(max_size=8), max_size=3),  # unknown source ids, or none
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2026-02-30", "next Friday"]),
)
fields = st.sampled_from(["text", "type", "importance", "source_message_ids", "occurred_at", "role", "id"])


@st.composite
def broken_reply(draw: st.DrawFn) -> str:
    reply = draw(valid_reply)
    for _ in range(draw(st.integers(1, 3))):
        memories = reply["memories"]
        at = draw(st.integers(0, len(memories) - 1))
        memories[at] = mutate(memories[at], draw(fields), draw(wrong_values))
    if draw(st.booleans()):
        reply[draw(st.sampled_from(["memories", "extra", "summary"]))] = draw(json_values)
    text = json.dumps(reply, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


any_reply = st.one_of(
    broken_reply(),
    json_values.map(json.dumps),
    st.builds(lambda memories: json.dumps({"memories": memories}), st.lists(json_values, max_size=3)),
    st.text(max_size=200),
    st.sampled_from(["", "null", "[]", "{}", '{"memories": []}', "[" * 5000, '{"memories": [' * 300]),
)


def assert_sound(drafts: list[MemoryDraft], conversation: Conversation) -> None:
    known = {m.id for m in conversation.messages}
    assert drafts and any(d.type == "summary" for d in drafts)
    for draft in drafts:
        assert type(draft) is MemoryDraft
        assert MemoryDraft.model_validate(draft.model_dump()) == draft
        assert draft.text == draft.text.strip(WHITE_SPACE) and draft.source_message_ids
        assert set(draft.source_message_ids) <= known
        assert len(set(draft.source_message_ids)) == len(draft.source_message_ids)
        assert draft.occurred_at is None or draft.occurred_at.utcoffset() == timedelta(0)


@settings(max_examples=1200, deadline=None, derandomize=True)
@given(any_reply)
@example(
    '{"memories": [{"text": "x", "type": "summary", "importance": 0.5, "source_message_ids": ["m0"], '
    '"occurred_at": "0001-01-01T00:00:00+01:00"}]}'
)  # used to raise OverflowError
@example(
    '{"memories": [{"text": "x", "type": "summary", "importance": true, "source_message_ids": ["m0"], '
    '"occurred_at": 123}]}'
)  # used to be read as importance 1.0 at 1970-01-01T00:02:03Z
def test_any_reply_gives_sound_drafts_or_an_extraction_error(content: str) -> None:
    try:
        drafts = parse_memories(content, CONVERSATION)
    except ExtractionError:
        return
    assert_sound(drafts, CONVERSATION)


@pytest.mark.parametrize(
    ("field", "value"),
    [("importance", True), ("importance", "0.5"), ("occurred_at", 123), ("occurred_at", 1.7e9)],
)
def test_a_wrong_json_type_is_not_coerced(field: str, value: Any) -> None:
    memory = {"text": "x", "type": "summary", "importance": 0.5, "source_message_ids": ["m0"], "occurred_at": None}
    with pytest.raises(ExtractionError, match=field):
        parse_memories(json.dumps({"memories": [{**memory, field: value}]}), CONVERSATION)


def test_an_id_with_spaces_around_it_is_cited_as_it_is() -> None:
    # The reply parser once stripped every string, ids too: " Zx9 ün " became unknown and the batch failed
    # on every retry.
    summary = {"text": " A chat. ", "type": "summary", "importance": 0.5, "source_message_ids": [" Zx9 ün "]}
    [draft] = parse_memories(json.dumps({"memories": [{**summary, "occurred_at": None}]}), CONVERSATION)
    assert (draft.text, draft.source_message_ids) == ("A chat.", [" Zx9 ün "])


# --- the same through the wire --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[OpenAIWireServer, OpenAIExtractor]]:
    with OpenAIWireServer() as server:
        client = OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0, timeout=5)
        yield server, OpenAIExtractor(client, "gpt-4o-mini")
        client.close()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.one_of(any_reply, valid_reply.map(json.dumps)))
def test_any_reply_over_the_wire_gives_sound_drafts_or_an_extraction_error(
    wire: tuple[OpenAIWireServer, OpenAIExtractor], content: str
) -> None:
    server, extractor = wire
    server.script_chat(chat(content))
    try:
        drafts = extractor.extract(CONVERSATION)
    except ExtractionError:
        return
    assert_sound(drafts, CONVERSATION)
