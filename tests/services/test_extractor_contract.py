"""What every extractor promises, run against both: the offline one and OpenAI's (over the wire format)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from openai import OpenAI

from scripts.sample_conversation import MAYA
from services.errors import ExtractionError
from services.extractor import Extractor
from services.models import Conversation, Message
from services.offline_extractor import OfflineExtractor
from services.openai_extractor import OpenAIExtractor
from tests.support.chat import T0
from tests.support.openai_wire import OpenAIWireServer


@pytest.fixture(params=["offline", "openai"])
def extractor(request: pytest.FixtureRequest) -> Iterator[Extractor]:
    if request.param == "offline":
        yield OfflineExtractor()
        return
    with OpenAIWireServer() as server:
        yield OpenAIExtractor(OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0), "gpt-4o-mini")


def conversation(turns: list[tuple[str, str]]) -> Conversation:
    messages = [
        Message(
            id=f"m{i:02d}",
            user_id="u1",
            character_name="meher",
            role=role,
            text=text,  # type: ignore[arg-type]
            created_at=T0 + timedelta(minutes=i),
        )
        for i, (role, text) in enumerate(turns)
    ]
    return Conversation(user_id="u1", character_name="meher", messages=messages)


def test_memories_cite_only_the_batch_and_include_one_summary(extractor: Extractor) -> None:
    batch = conversation(MAYA)
    drafts = extractor.extract(batch)
    ids = {m.id for m in batch.messages}
    assert drafts
    assert all(set(d.source_message_ids) <= ids and d.source_message_ids for d in drafts)
    assert all(0.0 <= d.importance <= 1.0 and d.text.strip() for d in drafts)
    [summary] = [d for d in drafts if d.type == "summary"]
    assert set(summary.source_message_ids) == ids


def test_an_assistant_only_batch_still_yields_its_summary(extractor: Extractor) -> None:
    drafts = extractor.extract(conversation([("assistant", "Hello! How can I help?")] * 3))
    assert [d.type for d in drafts] == ["summary"]


def test_an_empty_batch_is_an_error_not_an_empty_success(extractor: Extractor) -> None:
    with pytest.raises(ExtractionError):
        extractor.extract(Conversation(user_id="u1", character_name="meher", messages=[]))
