"""The pipeline on its OpenAI path, against a local server speaking the OpenAI wire format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.sample_conversation import MAYA
from services.container import Container
from services.embedder import LocalEmbedder
from services.health import check_health
from tests.conftest import make_settings
from tests.support.chat import save_turns, wait_until
from tests.support.openai_wire import Delay, OpenAIWireServer, Reply, chat, error

CHAR = "meher"


@pytest.fixture
def wire() -> Iterator[OpenAIWireServer]:
    with OpenAIWireServer(api_key="sk-test") as server:
        yield server


@pytest.fixture
def openai_container(emulator_host: str, tmp_path: Path, wire: OpenAIWireServer) -> Iterator[Container]:
    settings = make_settings(
        emulator_host,
        tmp_path,
        openai_api_key="sk-test",
        openai_base_url=wire.base_url,
        openai_max_retries=1,
        openai_timeout=1.0,
        batch_retry_base_seconds=1.0,
    )
    built = Container.build(settings)
    yield built
    built.close()


def test_openai_settings_select_openai_extraction_and_embeddings(
    openai_container: Container, wire: OpenAIWireServer, user_id: str
) -> None:
    assert (openai_container.extractor.name, openai_container.embedder.dimension) == ("openai", 1536)
    saved = save_turns(openai_container.store, user_id, CHAR, MAYA[:25])
    assert openai_container.processor.trigger(user_id, CHAR).batch_started
    wait_until(lambda: openai_container.store.count_unsynced(user_id, CHAR) == 0, "the OpenAI batch")
    [memory] = [m for m in openai_container.vectors.list_memories(user_id, CHAR) if m.type != "episode"]
    assert memory.type == "summary" and set(memory.source_message_ids) == {m.id for m in saved}
    [extraction] = wire.chat_requests
    assert extraction.body["response_format"]["json_schema"]["strict"] is True
    assert extraction.headers["authorization"] == "Bearer sk-test"
    assert all(r.body["dimensions"] == 1536 for r in wire.embedding_requests)


# A reply that arrives but is unusable is not retried by the SDK; a 5xx is, once (max_retries=1).
@pytest.mark.parametrize(
    ("failure", "attempts"),
    [
        (chat("{not json"), 1),
        (
            chat(
                {
                    "memories": [
                        {
                            "text": "x",
                            "type": "fact",
                            "importance": 7,
                            "source_message_ids": ["nope"],
                            "occurred_at": None,
                        }
                    ]
                }
            ),
            1,
        ),
        (chat(refusal="I can't help with that"), 1),
        (error(500), 2),
        (error(429, headers={"retry-after-ms": "10"}), 2),
        (Delay(2.0), 2),  # longer than the client's 1 s timeout, on both attempts
    ],
    ids=["malformed-json", "schema-violation", "refusal", "server-error", "rate-limited", "timeout"],
)
def test_extraction_failure_syncs_nothing_and_stores_nothing(
    openai_container: Container, wire: OpenAIWireServer, user_id: str, failure: Reply, attempts: int
) -> None:
    save_turns(openai_container.store, user_id, CHAR, MAYA[:25])
    wire.script_chat(*[failure] * attempts)
    first = openai_container.processor.trigger(user_id, CHAR)
    assert first.batch_started and first.batch_id
    wait_until(
        lambda: (openai_container.store.get_batch(user_id, CHAR, first.batch_id) or {}).get("status") == "failed",
        "the batch to fail",
    )

    assert openai_container.store.count_unsynced(user_id, CHAR) == 25
    assert openai_container.store.count_synced(user_id, CHAR) == 0
    assert openai_container.vectors.count(user_id, CHAR) == 0
    failed = openai_container.store.get_batch(user_id, CHAR, first.batch_id)
    assert failed is not None and failed["error"].startswith("extract:")
    assert (failed["attempt"], failed["retry_after_s"]) == (1, 1.0)
    assert check_health(openai_container)["llm"].status == "degraded"

    # A trigger during the backoff leaves the messages alone; once it has passed, the retry succeeds.
    assert not openai_container.processor.trigger(user_id, CHAR).batch_started
    wait_until(lambda: openai_container.processor.trigger(user_id, CHAR).batch_started, "the backoff to pass", 10)
    wait_until(lambda: openai_container.store.count_unsynced(user_id, CHAR) == 0, "the retried batch")
    retried = openai_container.store.last_batch(user_id, CHAR)
    assert retried is not None and (retried["status"], retried["attempt"]) == ("succeeded", 2)
    assert openai_container.store.count_synced(user_id, CHAR) == 25
    assert openai_container.vectors.count(user_id, CHAR, "memories") == 1
    assert check_health(openai_container)["llm"].status == "ok"


def test_vector_size_mismatch_stops_start_up(emulator_host: str, tmp_path: Path, embedder: LocalEmbedder) -> None:
    from services.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="QDRANT_VECTOR_SIZE=1536"):
        Container.build(make_settings(emulator_host, tmp_path, qdrant_vector_size=1536), embedder=embedder)
