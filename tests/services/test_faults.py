"""Invariants under faults: stale workers, duplicate deliveries, dependencies down, stranded messages."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from api.main import create_app
from scripts import firestore_emulator
from scripts.sample_conversation import MAYA
from services.config import Settings
from services.container import Container, build_firestore_client
from services.embedder import LocalEmbedder, OpenAIEmbedder
from services.errors import MessageStoreError
from services.memory_integration import MemoryIntegration
from services.message_store import MessageStore, utcnow
from tests.conftest import PROJECT, make_settings
from tests.support.access import ADMIN_KEY, TRIGGER_SECRET, bearer
from tests.support.chat import filler_turns, save_turns, wait_until
from tests.support.openai_wire import OpenAIWireServer, error

TRIGGER = bearer(TRIGGER_SECRET)

CHAR = "meher"


def batch_docs(container: Container, user_id: str) -> list[dict]:
    docs = container.store.conversation(user_id, CHAR).collection("batches").stream()
    return [{"batch_id": d.id, **(d.to_dict() or {})} for d in docs]


def test_a_stale_worker_cannot_mark_messages_or_leave_points(container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, MAYA[:25])
    processor = container.processor
    stale = container.store.claim(
        user_id, CHAR, batch_id="stale", max_messages=100, min_messages=25, lease_seconds=0.05
    )
    assert stale is not None
    time.sleep(0.1)  # the stale worker stalls past its lease; another takes over and finishes
    fresh = processor.claim(user_id, CHAR)
    assert fresh is not None and fresh.message_ids == stale.message_ids
    assert processor.run(fresh).status == "succeeded"
    fresh_record = container.store.get_batch(user_id, CHAR, fresh.batch_id)
    points_before = sorted(m.id for m in container.vectors.list_memories(user_id, CHAR, limit=500))

    # The stale worker wakes and runs its batch to the end.
    assert processor.run(stale).status == "superseded"

    assert container.store.get_batch(user_id, CHAR, fresh.batch_id) == fresh_record
    assert sorted(m.id for m in container.vectors.list_memories(user_id, CHAR, limit=500)) == points_before
    stale_record = container.store.get_batch(user_id, CHAR, "stale")
    assert stale_record is not None and stale_record["status"] == "superseded"
    assert container.store.count_synced(user_id, CHAR) == 25


def test_the_same_event_ten_times_concurrently_and_late_starts_one_batch(container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, MAYA)
    with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as api:
        event = {"user_id": user_id, "character_name": CHAR, "event_id": "evt-1"}
        barrier = threading.Barrier(10)
        answers: list[dict] = []

        def deliver() -> None:
            barrier.wait()
            answers.append(api.post("/firebase/message-created", json=event, headers=TRIGGER).json())

        threads = [threading.Thread(target=deliver) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(lambda: container.store.count_unsynced(user_id, CHAR) == 0, "the batch")
        late = [api.post("/firebase/message-created", json=event, headers=TRIGGER).json() for _ in range(3)]
    assert sum(a["batch_started"] for a in answers + late) == 1
    assert len(batch_docs(container, user_id)) == 1


@pytest.fixture
def wire() -> Iterator[OpenAIWireServer]:
    with OpenAIWireServer() as server:
        yield server


def test_qdrant_down_then_back(container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, MAYA[:25])
    container.vectors.close()  # the engine goes away: every call now fails
    failed = container.processor.run_chain(container.processor.claim(user_id, CHAR))
    assert [o.status for o in failed] == ["failed"] and failed[0].error.startswith("upsert: VectorStoreError")
    assert container.store.count_unsynced(user_id, CHAR) == 25
    record = container.store.get_batch(user_id, CHAR, failed[0].batch_id)
    assert record is not None and (record["status"], record["attempt"]) == ("failed", 1)
    assert "VectorStoreError" in record["error"]

    with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as api:
        health = api.get("/memory/health")
        assert health.status_code == 503 and health.json()["components"]["qdrant"]["status"] == "degraded"
        start = time.perf_counter()
        ctx = api.post(
            f"/memory/context/{user_id}/{CHAR}", json={"current_message": "how is Tom?", "base_system_prompt": "BASE"}
        ).json()
        elapsed_s = time.perf_counter() - start
        assert (ctx["prompt"], ctx["degraded"]) == ("BASE", True)
        assert elapsed_s < 5 * container.integration.timeout_s + 1  # answered, not hung on the dead store

        container.vectors.ensure_ready()  # the engine is back
        wait_until(lambda: container.processor.trigger(user_id, CHAR).batch_started, "the backoff to pass", 15)
        wait_until(lambda: container.store.count_unsynced(user_id, CHAR) == 0, "the retry")
        assert api.get("/memory/health").json()["components"]["qdrant"]["status"] == "ok"
    assert [b["attempt"] for b in sorted(batch_docs(container, user_id), key=lambda b: b["created_at"])] == [1, 2]


def test_embedding_failure_leaves_messages_unsynced_and_health_degraded(
    emulator_host: str, tmp_path: Path, wire: OpenAIWireServer, user_id: str
) -> None:
    client = OpenAI(api_key="sk-test", base_url=wire.base_url, max_retries=0)
    settings = make_settings(emulator_host, tmp_path, batch_retry_base_seconds=0.0)
    container = Container.build(settings, embedder=OpenAIEmbedder(client, "text-embedding-3-small", 1536))
    try:
        save_turns(container.store, user_id, CHAR, MAYA[:25])
        wire.script_embeddings(error(500), error(503))
        [failed] = container.processor.run_chain(container.processor.claim(user_id, CHAR))
        assert failed.status == "failed" and failed.error.startswith("embed: EmbeddingError")
        assert container.store.count_unsynced(user_id, CHAR) == 25
        assert container.vectors.count(user_id, CHAR) == 0
        with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as api:
            body = api.get("/memory/health").json()
            assert body["components"]["embedder"]["status"] == "degraded"
            [ok] = container.processor.run_chain(container.processor.claim(user_id, CHAR))
            assert ok.status == "succeeded"
            assert api.get("/memory/health").json()["status"] == "ok"
        assert container.store.count_synced(user_id, CHAR) == 25
    finally:
        container.close()


def test_context_returns_the_base_prompt_within_budget_when_firestore_is_unreachable(container: Container) -> None:
    dead = Settings(
        _env_file=None,
        google_cloud_project=PROJECT,  # type: ignore[call-arg]
        firestore_emulator_host=f"127.0.0.1:{firestore_emulator.free_port()}",
    )
    integration = MemoryIntegration(
        MessageStore(build_firestore_client(dead)),
        container.embedder,
        container.vectors,
        container.integration.budget,
        timeout_s=0.25,
    )
    try:
        start = time.perf_counter()
        prompt = asyncio.run(
            integration.enhance_system_prompt(
                user_id="u1", character_name=CHAR, current_message="hello", base_system_prompt="BASE"
            )
        )
        elapsed = time.perf_counter() - start
        # The read behind it gives up within the budget too, instead of retrying on a thread of the pool.
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(MessageStoreError):
            pool.submit(integration.build_context, "u2", CHAR, "hello", "whatsapp").result(timeout=5)
        read_for = time.perf_counter() - start
    finally:
        integration.close()
    assert prompt == "BASE"
    assert elapsed < 0.5, f"answered after {elapsed:.3f}s with a 0.25s budget"
    assert read_for < 1.0, f"the recent-turns read gave up after {read_for:.3f}s with a 0.25s budget"


@pytest.fixture
def quiet_container(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, clean_firestore: None
) -> Iterator[Container]:
    built = Container.build(make_settings(emulator_host, tmp_path, idle_flush_seconds=60), embedder=embedder)
    yield built
    built.close()


def test_a_quiet_conversation_below_the_threshold_is_flushed(quiet_container: Container, user_id: str) -> None:
    store: MessageStore = quiet_container.store
    quiet, active = f"{user_id}-quiet", f"{user_id}-active"
    save_turns(store, quiet, CHAR, MAYA[:6], start=utcnow() - timedelta(hours=2))
    save_turns(store, active, CHAR, filler_turns(4), start=utcnow() - timedelta(hours=2))
    store.save_message(active, CHAR, role="user", text="still here!")  # spoke just now: not quiet

    report = quiet_container.sweeper.sweep(wait=True)

    assert report.quiet_conversations == 1 and [o.status for o in report.outcomes] == ["succeeded"]
    assert (store.count_unsynced(quiet, CHAR), store.count_synced(quiet, CHAR)) == (0, 6)
    assert quiet_container.vectors.count(quiet, CHAR) >= 1
    assert store.count_unsynced(active, CHAR) == 5
    # A second sweep finds nothing more to do.
    assert quiet_container.sweeper.sweep(wait=True).quiet_conversations == 0


def test_the_sweep_endpoint_starts_batches_for_a_scheduler(quiet_container: Container, user_id: str) -> None:
    save_turns(quiet_container.store, user_id, CHAR, MAYA[:3], start=utcnow() - timedelta(hours=1))
    with TestClient(create_app(container=quiet_container), headers=bearer(ADMIN_KEY)) as api:
        body = api.post("/memory/sweep").json()
    assert body["quiet_conversations"] == 1 and len(body["batches_started"]) == 1
    wait_until(lambda: quiet_container.store.count_unsynced(user_id, CHAR) == 0, "the swept batch")
