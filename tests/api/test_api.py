from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from scripts.sample_conversation import MAYA
from services.container import Container
from tests.support.access import ADMIN_KEY, TRIGGER_SECRET, bearer
from tests.support.chat import save_turns, wait_until

TRIGGER = bearer(TRIGGER_SECRET)

CHAR = "meher"


@pytest.fixture
def api(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as client:
        yield client


def test_save_message_then_trigger(api: TestClient, container: Container, user_id: str) -> None:
    created = api.post(f"/messages/{user_id}/{CHAR}", json={"role": "user", "text": "I love sailing 🌊"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["text"], body["sync"], body["channel"]) == ("I love sailing 🌊", False, "whatsapp")
    assert body["speaker"] is None
    named = api.post(f"/messages/{user_id}/{CHAR}", json={"role": "user", "text": "Hi!", "speaker": "Maya Ortiz"})
    assert named.status_code == 201 and named.json()["speaker"] == "Maya Ortiz"
    [_, stored] = container.store.recent_unsynced(user_id, CHAR, 2)
    assert stored.speaker == "Maya Ortiz"
    trigger = api.post("/firebase/message-created", json={"user_id": user_id, "character_name": CHAR}, headers=TRIGGER)
    assert trigger.status_code == 200
    assert trigger.json() == {
        "user_id": user_id,
        "character_name": CHAR,
        "unsynced_count": 2,
        "threshold": 25,
        "batch_started": False,
        "batch_id": None,
    }


@pytest.mark.parametrize("bad_user", ["__id__", "a%01b", "x" * 129, "%2E"])
def test_bad_path_ids_are_422_and_write_nothing(api: TestClient, container: Container, bad_user: str) -> None:
    for response in (
        api.post(f"/messages/{bad_user}/{CHAR}", json={"role": "user", "text": "hi"}),
        api.get(f"/memory/search/{bad_user}/{CHAR}", params={"query": "x"}),
        api.get(f"/memory/stats/{bad_user}/{CHAR}"),
        api.post(f"/memory/check-batch/{bad_user}/{CHAR}"),
    ):
        assert response.status_code == 422, response.text
        assert "detail" in response.json()


@pytest.mark.parametrize("path_user", ["a%2Fb", "..", "a/b"])
def test_path_traversal_never_reaches_firestore(api: TestClient, container: Container, path_user: str) -> None:
    # URL normalisation or routing stops these before any handler runs: 404 or 422, never a write.
    response = api.post(f"/messages/{path_user}/{CHAR}", json={"role": "user", "text": "hi"})
    assert response.status_code in (404, 422)
    assert container.store.count_unsynced("a", CHAR) == 0
    trigger = api.post("/firebase/message-created", json={"user_id": "a/b", "character_name": CHAR}, headers=TRIGGER)
    assert trigger.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"role": "system", "text": "hi"},
        {"role": "user", "text": ""},
        {"role": "user", "text": "x" * 8001},
        {"role": "user", "text": "hi", "unexpected": 1},
        {"text": "hi"},
        {"role": "user", "text": "hi", "channel": "a/b"},
        {"role": "user", "text": "hi", "speaker": "s" * 65},
        {"role": "user", "text": "hi", "speaker": "   "},
        {"role": "user", "text": "hi", "speaker": "Maya\n"},
    ],
)
def test_bad_message_bodies_are_422(api: TestClient, container: Container, user_id: str, body: dict) -> None:
    response = api.post(f"/messages/{user_id}/{CHAR}", json=body)
    assert response.status_code == 422, response.text
    assert container.store.count_unsynced(user_id, CHAR) == 0


def test_duplicate_message_id_is_409(api: TestClient, user_id: str) -> None:
    body = {"role": "user", "text": "hello", "message_id": "fixed-id"}
    assert api.post(f"/messages/{user_id}/{CHAR}", json=body).status_code == 201
    assert api.post(f"/messages/{user_id}/{CHAR}", json=body).status_code == 409


@pytest.mark.parametrize(
    "params", [{}, {"query": ""}, {"query": "x", "limit": 0}, {"query": "x", "limit": 51}, {"query": "x" * 1001}]
)
def test_bad_search_parameters_are_422(api: TestClient, user_id: str, params: dict) -> None:
    assert api.get(f"/memory/search/{user_id}/{CHAR}", params=params).status_code == 422


def test_search_stats_and_context_after_a_batch(api: TestClient, container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, MAYA)
    assert api.post(f"/memory/check-batch/{user_id}/{CHAR}").json()["batch_started"] is True
    wait_until(lambda: container.store.count_unsynced(user_id, CHAR) == 0, "the batch")

    results = api.get(f"/memory/search/{user_id}/{CHAR}", params={"query": "Maya's dog", "limit": 2}).json()
    assert len(results["results"]) == 2
    first = results["results"][0]
    assert {"id", "text", "type", "importance", "score", "source_message_ids", "created_at"} <= set(first)

    stats = api.get(f"/memory/stats/{user_id}/{CHAR}").json()
    assert (stats["synced_messages"], stats["unsynced_messages"]) == (30, 0)
    assert stats["total_memories"] == stats["last_batch"]["memory_count"]
    assert stats["episodes"] == stats["last_batch"]["episode_count"] == 28  # 30 turns, three at a time

    for kind in ("memories", "episodes"):
        found = api.get(f"/memory/search/{user_id}/{CHAR}", params={"query": "Maya's dog", "kind": kind}).json()
        assert found["results"] and {r["type"] == "episode" for r in found["results"]} == {kind == "episodes"}

    base = "You are Meher, a warm companion."
    for channel in ("whatsapp", "voice"):
        ctx = api.post(
            f"/memory/context/{user_id}/{CHAR}",
            json={
                "current_message": "Any tips for my interview on Friday?",
                "channel": channel,
                "base_system_prompt": base,
            },
        ).json()
        assert ctx["prompt"].startswith(base) and ctx["prompt"] != base
        assert not ctx["degraded"] and 0 < ctx["tokens"] <= 400
        assert any("interview" in m["text"] for m in ctx["memories"])
        # Text channels quote the turns first; voice gets short facts only.
        assert (ctx["memories"][0]["type"] == "episode") == (channel == "whatsapp")
    assert "##" not in ctx["context"], "voice context is speakable, with no markup"
    assert all(m["type"] != "episode" for m in ctx["memories"])


def test_context_degrades_to_the_base_prompt_when_out_of_time(
    api: TestClient, container: Container, user_id: str
) -> None:
    container.integration.timeout_s = 0.000001
    body = {"current_message": "hello", "base_system_prompt": "BASE"}
    ctx = api.post(f"/memory/context/{user_id}/{CHAR}", json=body).json()
    assert (ctx["prompt"], ctx["degraded"], ctx["memories"]) == ("BASE", True, [])
    assert "timed out" in ctx["reason"]


def test_health_reports_every_component(api: TestClient) -> None:
    response = api.get("/memory/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok", body
    assert set(body["components"]) == {"firestore", "qdrant", "embedder", "llm"}
    assert all(c["status"] == "ok" and c["latency_ms"] >= 0 for c in body["components"].values())


def test_openapi_is_served(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/memory/search/{user_id}/{character_name}",
        "/firebase/message-created",
        "/memory/health",
        "/memory/context/{user_id}/{character_name}",
        "/messages/{user_id}/{character_name}",
    } <= set(paths)
