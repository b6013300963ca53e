"""Messages written straight into Firestore become searchable memories with no manual call."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from google.cloud import firestore

from api.main import create_app
from scripts.sample_conversation import MAYA
from services.container import Container
from services.embedder import LocalEmbedder
from tests.conftest import make_settings
from tests.support.access import ADMIN_KEY, bearer
from tests.support.chat import wait_until, write_turns_at_once

CHAR = "meher"


def test_thirty_messages_flow_through_the_listener_into_memory(
    clean_firestore: None,
    emulator_host: str,
    tmp_path: Path,
    embedder: LocalEmbedder,
    firestore_client: firestore.Client,
    user_id: str,
) -> None:
    container = Container.build(make_settings(emulator_host, tmp_path, listener_enabled=True), embedder=embedder)
    try:
        with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as api:
            ids = write_turns_at_once(firestore_client, user_id, CHAR, MAYA)

            def stats() -> dict:
                return api.get(f"/memory/stats/{user_id}/{CHAR}").json()

            wait_until(lambda: stats()["synced_messages"] == 30, "the listener's batch to sync all 30 messages")
            final = stats()
            assert final["unsynced_messages"] == 0
            assert final["total_memories"] == final["last_batch"]["memory_count"] > 1

            found = api.get(
                f"/memory/search/{user_id}/{CHAR}", params={"query": "what does my brother do for work?", "limit": 3}
            ).json()["results"]
            assert any("firefighter" in r["text"] for r in found)
            assert all(set(r["source_message_ids"]) <= set(ids) for r in found)

            again = api.post(f"/memory/check-batch/{user_id}/{CHAR}").json()
            assert (again["unsynced_count"], again["batch_started"]) == (0, False)
            assert stats()["total_memories"] == final["total_memories"]
    finally:
        container.close()
