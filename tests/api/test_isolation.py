"""Tenant isolation from the outside: a caller on user A's paths gets nothing of user B's, whatever it asks.

B holds the Maya conversation (Lisbon, Biscuit, the interview); A holds a different one. Every endpoint
that takes a user and character is asked, with queries about B's life, the largest limit, ids that
look like B's, and B's own message ids.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from scripts.sample_conversation import MAYA
from services.container import Container
from services.models import Memory
from tests.support.access import ADMIN_KEY, bearer
from tests.support.chat import save_turns, wait_until

CHAR = "meher"
RAVI = [
    ("user", "Hi, I'm Ravi and I work as a carpenter in Oslo."),
    ("assistant", "Nice to meet you, Ravi! What do you build?"),
    ("user", "Mostly tables. My cat Pixel sleeps in the sawdust."),
    ("assistant", "Ha, a workshop cat!"),
    ("user", "I'm planning a trip to Kyoto in May."),
    ("assistant", "Kyoto in spring sounds lovely."),
    ("user", "My sister Ana is a pilot."),
    ("assistant", "That is an exciting job."),
    ("user", "I love jazz, especially Coltrane."),
    ("assistant", "Great taste."),
    ("user", "I hate mushrooms."),
    ("assistant", "Noted, no mushrooms."),
    *[("user" if i % 2 == 0 else "assistant", f"Turn {i}: the fjord was calm today.") for i in range(14)],
]
# Questions about B's life, asked on A's paths.
ABOUT_B = [
    "Maya's dog Biscuit",
    "grandmother in Lisbon",
    "job interview on Friday for head nurse",
    "Berlin half marathon",
    "brother Tom firefighter Denver",
    "user-b",
    "*",
]


@dataclass(frozen=True)
class Tenants:
    a: str
    b: str
    a_messages: set[str]
    b_messages: set[str]
    b_memories: list[Memory]


@pytest.fixture
def api(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as client:
        yield client


@pytest.fixture
def tenants(api: TestClient, container: Container, user_id: str) -> Tenants:
    a, b = f"{user_id}-a", f"{user_id}-b"
    a_saved = save_turns(container.store, a, CHAR, RAVI)
    b_saved = save_turns(container.store, b, CHAR, MAYA)
    for user in (a, b):
        assert api.post(f"/memory/check-batch/{user}/{CHAR}").json()["batch_started"] is True
    wait_until(
        lambda: container.store.count_unsynced(a, CHAR) + container.store.count_unsynced(b, CHAR) == 0, "batches"
    )
    b_memories = container.vectors.list_memories(b, CHAR)
    assert b_memories and container.vectors.list_memories(a, CHAR)
    return Tenants(a, b, {m.id for m in a_saved}, {m.id for m in b_saved}, b_memories)


def test_search_on_a_never_returns_b(api: TestClient, tenants: Tenants) -> None:
    b_ids = {m.id for m in tenants.b_memories}
    for query in ABOUT_B:
        results = api.get(f"/memory/search/{tenants.a}/{CHAR}", params={"query": query, "limit": 50}).json()["results"]
        assert results, query  # A's own memories come back, ranked low, but never B's
        for hit in results:
            assert hit["id"] not in b_ids, (query, hit)
            assert set(hit["source_message_ids"]) <= tenants.a_messages, (query, hit)


def test_context_on_a_holds_nothing_of_b(api: TestClient, tenants: Tenants) -> None:
    b_texts = [m.text for m in tenants.b_memories]
    for channel in ("whatsapp", "voice"):
        for question in ABOUT_B:
            body = {"current_message": question, "channel": channel, "base_system_prompt": "BASE"}
            ctx = api.post(f"/memory/context/{tenants.a}/{CHAR}", json=body).json()
            assert not ctx["degraded"], ctx["reason"]
            for text in b_texts:
                assert text not in ctx["prompt"], (question, text)
            assert all(set(m["source_message_ids"]) <= tenants.a_messages for m in ctx["memories"])
            assert all(t["user_id"] == tenants.a for t in ctx["recent_turns"])
            assert "Maya" not in ctx["prompt"] and "Lisbon" not in ctx["prompt"]


def test_stats_on_a_count_only_a(api: TestClient, container: Container, tenants: Tenants) -> None:
    stats = api.get(f"/memory/stats/{tenants.a}/{CHAR}").json()
    assert stats["synced_messages"] == len(RAVI)
    assert stats["total_memories"] == container.vectors.count(tenants.a, CHAR, "memories")
    assert stats["episodes"] == container.vectors.count(tenants.a, CHAR, "episodes") > 0
    assert set(stats["last_batch"]["message_ids"]) <= tenants.a_messages


def test_another_character_of_the_same_user_is_another_tenant(api: TestClient, tenants: Tenants) -> None:
    for query in ABOUT_B[:3]:
        other = api.get(f"/memory/search/{tenants.b}/someone-else", params={"query": query, "limit": 50}).json()
        assert other["results"] == []
    stats = api.get(f"/memory/stats/{tenants.b}/someone-else").json()
    assert (stats["total_memories"], stats["synced_messages"], stats["last_batch"]) == (0, 0, None)


def test_ids_that_only_look_like_b_are_other_tenants(api: TestClient, tenants: Tenants) -> None:
    b = tenants.b
    lookalikes = [
        b.upper(),
        b + " ",
        " " + b,
        b + "\u200b",  # zero-width space
        unicodedata.normalize("NFKC", b).replace("-", "\u2010"),  # a hyphen that is not '-'
        b.replace("u", "\uff55", 1),  # fullwidth u
        b + "%",
        b[:-1],
    ]
    for user in lookalikes:
        assert user != b
        found = api.get(f"/memory/search/{user}/{CHAR}", params={"query": "Biscuit", "limit": 50})
        assert found.status_code == 200, (user, found.text)
        assert found.json()["results"] == [], user
        assert api.get(f"/memory/stats/{user}/{CHAR}").json()["synced_messages"] == 0, user


def test_a_message_id_of_b_written_on_a_stays_on_a(api: TestClient, container: Container, tenants: Tenants) -> None:
    taken = sorted(tenants.b_messages)[0]
    created = api.post(f"/messages/{tenants.a}/{CHAR}", json={"role": "user", "text": "mine", "message_id": taken})
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == tenants.a
    b_doc = (
        container.firestore.collection("users")
        .document(tenants.b)
        .collection("characters")
        .document(CHAR)
        .collection("messages")
        .document(taken)
        .get()
    )
    assert b_doc.get("text") != "mine" and b_doc.get("sync") is True
    assert container.store.count_unsynced(tenants.b, CHAR) == 0
    assert container.store.count_unsynced(tenants.a, CHAR) == 1


def test_a_trigger_for_a_leaves_b_alone(api: TestClient, container: Container, tenants: Tenants) -> None:
    save_turns(container.store, tenants.b, CHAR, RAVI[:5])
    answer = api.post(f"/memory/check-batch/{tenants.a}/{CHAR}").json()
    assert (answer["unsynced_count"], answer["batch_started"]) == (0, False)
    assert container.store.count_unsynced(tenants.b, CHAR) == 5
