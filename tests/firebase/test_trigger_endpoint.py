"""POST /firebase/message-created: the caller's secret, and one batch per event id however often it comes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from api.main import create_app
from services.container import Container
from services.embedder import LocalEmbedder
from services.errors import MessageStoreError
from services.trigger_events import COLLECTION, TriggerEvents
from tests.conftest import make_settings
from tests.support.access import ADMIN_KEY, bearer, key_of
from tests.support.access import TRIGGER_SECRET as SECRET
from tests.support.chat import filler_turns, save_turns, wait_until

CHAR = "meher"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def api(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as client:
        yield client


def body(user_id: str, **extra: object) -> dict[str, object]:
    return {"user_id": user_id, "character_name": CHAR, **extra}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": "Bearer ü".encode()},
    ],
    ids=["missing", "wrong", "not bearer", "non-ascii"],
)
def test_a_caller_without_the_secret_gets_401_and_starts_nothing(
    api: TestClient, container: Container, user_id: str, headers: dict[str, Any]
) -> None:
    save_turns(container.store, user_id, CHAR, filler_turns(25))
    response = api.post("/firebase/message-created", json=body(user_id, event_id="e-1"), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert container.store.last_batch(user_id, CHAR) is None
    assert container.store.count_unsynced(user_id, CHAR) == 25


def test_the_secret_opens_the_trigger_and_nothing_else(api: TestClient, container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, filler_turns(25))
    response = api.post("/firebase/message-created", json=body(user_id), headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["batch_started"] is True and "duplicate" not in response.json()
    wait_until(lambda: container.store.count_unsynced(user_id, CHAR) == 0, "the batch")
    # The secret is a valid credential, but for this endpoint only.
    assert api.post(f"/memory/check-batch/{user_id}/{CHAR}", headers=AUTH).status_code == 403
    assert api.get(f"/memory/stats/{user_id}/{CHAR}", headers=AUTH).status_code == 403
    assert api.post(f"/memory/check-batch/{user_id}/{CHAR}", headers=bearer(key_of("trigger"))).status_code == 200


@pytest.mark.parametrize("key", ["admin", "trigger", "writer"])
def test_no_service_key_opens_the_function_trigger(
    api: TestClient, container: Container, user_id: str, key: str
) -> None:
    save_turns(container.store, user_id, CHAR, filler_turns(25))
    response = api.post("/firebase/message-created", json=body(user_id), headers=bearer(key_of(key)))
    assert response.status_code == 403, response.text
    assert container.store.last_batch(user_id, CHAR) is None


@pytest.mark.parametrize("where", ["body", "header"])
def test_a_repeated_event_id_is_acknowledged_without_a_new_batch(
    api: TestClient, container: Container, firestore_client: firestore.Client, user_id: str, where: str
) -> None:
    event_id = f"evt-{user_id}"
    kwargs: dict[str, object] = (
        {"json": body(user_id, event_id=event_id), "headers": AUTH}
        if where == "body"
        else {"json": body(user_id), "headers": {**AUTH, "Idempotency-Key": event_id}}
    )
    save_turns(container.store, user_id, CHAR, filler_turns(24))
    first = api.post("/firebase/message-created", **kwargs).json()  # type: ignore[arg-type]
    assert (first["unsynced_count"], first["batch_started"], first.get("duplicate")) == (24, False, None)

    # The 25th message is there now, yet the same event again must not start the batch.
    save_turns(container.store, user_id, CHAR, [("user", "one more")])
    again = api.post("/firebase/message-created", **kwargs)  # type: ignore[arg-type]
    assert again.status_code == 200
    assert again.json() == {
        "user_id": user_id,
        "character_name": CHAR,
        "unsynced_count": 25,
        "threshold": 25,
        "batch_started": False,
        "batch_id": None,
        "duplicate": True,
    }
    assert container.store.last_batch(user_id, CHAR) is None

    fresh = api.post("/firebase/message-created", json=body(user_id, event_id=f"{event_id}-2"), headers=AUTH)
    assert fresh.json()["batch_started"] is True
    records = list(
        firestore_client.collection(COLLECTION).where(filter=FieldFilter("event_id", "==", event_id)).stream()
    )
    assert len(records) == 1
    record = records[0].to_dict() or {}
    assert record["expires_at"] > record["received_at"], "expires_at feeds the TTL policy"
    wait_until(lambda: container.store.count_unsynced(user_id, CHAR) == 0, "the batch")


def test_event_id_and_idempotency_key_must_agree(api: TestClient, user_id: str) -> None:
    headers = {**AUTH, "Idempotency-Key": "a"}
    response = api.post("/firebase/message-created", json=body(user_id, event_id="b"), headers=headers)
    # Two ids naming different events clash: a documented 409 (a 422 would claim the body breaks the schema).
    assert response.status_code == 409
    assert "different events" in response.json()["detail"]


def test_without_a_secret_the_trigger_refuses_every_call_and_start_up_says_so(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(emulator_host, tmp_path, recall_trigger_secret=None)
    container = Container.build(settings, embedder=embedder)
    try:
        save_turns(container.store, user_id, CHAR, filler_turns(25))
        with caplog.at_level(logging.INFO, logger="api.main"), TestClient(create_app(container=container)) as client:
            assert client.post("/firebase/message-created", json=body(user_id), headers=AUTH).status_code == 401
            admin = client.post("/firebase/message-created", json=body(user_id), headers=bearer(ADMIN_KEY))
            assert admin.status_code == 403
        assert container.store.last_batch(user_id, CHAR) is None
        access = [r.getMessage() for r in caplog.records if r.name == "api.main" and "access:" in r.getMessage()]
        assert len(access) == 1 and "trigger secret not set" in access[0], access
    finally:
        container.close()


def test_an_event_whose_trigger_failed_runs_again_on_its_retry(firestore_client: firestore.Client) -> None:
    events = TriggerEvents(firestore_client)
    event_id = f"evt-{uuid.uuid4().hex}"

    def fail() -> str:
        raise MessageStoreError("firestore blinked")

    with pytest.raises(MessageStoreError):
        events.once(event_id, fail)
    assert events.once(event_id, lambda: "ran") == "ran"
    assert events.once(event_id, lambda: "ran twice") is None
