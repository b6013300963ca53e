"""firestore.rules on the emulator: what a signed-in end user may and may not do, through the REST API.

The rules are loaded into their own `demo-` project; the rest of the suite uses another project, whose
rules stay open, and the server SDK, which the emulator treats as admin anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from services.container import build_firestore_client
from services.models import MESSAGE_MAX_CHARS
from tests.conftest import make_settings
from tests.firebase.emulator_rest import Reply, documents_url, load_rules, request
from tests.support.access import id_token

RULES_PROJECT = "demo-recall-rules"
RULES = Path(__file__).resolve().parents[2] / "firestore.rules"
CHAR = "meher"
_MISSING = object()  # a field left out of a message


class Client:
    """One end user (or nobody) talking to the emulator's REST API."""

    def __init__(self, host: str, uid: str | None) -> None:
        self.base = documents_url(host, RULES_PROJECT)
        self.token = id_token(RULES_PROJECT, uid) if uid else None

    def create(self, collection: str, doc_id: str, data: dict[str, Any]) -> Reply:
        return request("POST", f"{self.base}/{collection}?documentId={doc_id}", {"fields": fields(data)}, self.token)

    def get(self, path: str) -> Reply:
        return request("GET", f"{self.base}/{path}", token=self.token)

    def patch(self, path: str, data: dict[str, Any]) -> Reply:
        mask = "&".join(f"updateMask.fieldPaths={k}" for k in data)
        body = {"fields": fields(data)}
        return request("PATCH", f"{self.base}/{path}?{mask}&currentDocument.exists=true", body, self.token)

    def delete(self, path: str) -> Reply:
        return request("DELETE", f"{self.base}/{path}", token=self.token)

    def query_all_messages(self) -> Reply:
        query = {"structuredQuery": {"from": [{"collectionId": "messages", "allDescendants": True}]}}
        return request("POST", f"{self.base}:runQuery", query, self.token)


def fields(data: dict[str, Any]) -> dict[str, Any]:
    return {key: _value(value) for key, value in data.items()}


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, datetime):
        return {"timestampValue": value.isoformat().replace("+00:00", "Z")}
    if value is None:
        return {"nullValue": None}
    return {"stringValue": value}


def message(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "role": "user",
        "text": "I adopted a dog called Biscuit.",
        "channel": "whatsapp",
        "created_at": datetime.now(UTC),
        "sync": False,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not _MISSING}


def messages_of(uid: str) -> str:
    return f"users/{uid}/characters/{CHAR}/messages"


@pytest.fixture(scope="module")
def rules_host(emulator_host: str) -> str:
    reply = load_rules(emulator_host, RULES_PROJECT, RULES.read_text())
    assert reply.status == 200, reply
    return emulator_host


@pytest.fixture(scope="module")
def admin(rules_host: str) -> Iterator[firestore.Client]:
    # The server SDK, as Recall's API uses it on the emulator.
    yield build_firestore_client(make_settings(rules_host, Path("/nonexistent"), google_cloud_project=RULES_PROJECT))


@pytest.fixture
def alice(rules_host: str) -> tuple[str, Client]:
    uid = f"alice-{uuid.uuid4().hex[:8]}"
    return uid, Client(rules_host, uid)


@pytest.fixture
def bob(rules_host: str) -> tuple[str, Client]:
    uid = f"bob-{uuid.uuid4().hex[:8]}"
    return uid, Client(rules_host, uid)


# -- allowed ---------------------------------------------------------------------------------------


def test_a_user_creates_and_reads_their_own_messages(alice: tuple[str, Client]) -> None:
    uid, client = alice
    assert client.create(messages_of(uid), "m1", message()).status == 200
    assert client.create(messages_of(uid), "m2", message(channel=_MISSING, role="assistant")).status == 200
    assert client.create(messages_of(uid), "m3", message(text="x" * MESSAGE_MAX_CHARS)).status == 200
    assert client.create(messages_of(uid), "m4", message(speaker="Maya")).status == 200

    got = client.get(f"{messages_of(uid)}/m1")
    assert got.status == 200 and got.body["fields"]["sync"] == {"booleanValue": False}
    listed = client.get(messages_of(uid))
    assert listed.status == 200 and len(listed.body["documents"]) == 4


def test_the_server_sdk_bypasses_the_rules(admin: firestore.Client, alice: tuple[str, Client]) -> None:
    uid, client = alice
    assert client.create(messages_of(uid), "m1", message()).status == 200
    conversation = admin.document(f"users/{uid}/characters/{CHAR}")
    conversation.collection("messages").document("m1").update({"sync": True, "batch_id": "b1"})
    conversation.collection("batches").document("b1").set({"status": "succeeded"})
    admin.collection("trigger_events").document(uuid.uuid4().hex).create({"event_id": "e"})
    assert client.get(f"{messages_of(uid)}/m1").body["fields"]["sync"] == {"booleanValue": True}


# -- denied ----------------------------------------------------------------------------------------

BAD_MESSAGES: dict[str, dict[str, Any]] = {
    "sync true": message(sync=True),
    "sync missing": message(sync=_MISSING),
    "sync not a bool": message(sync="false"),
    "extra field batch_id": message(batch_id="b1"),
    "extra field lease_expires_at": message(lease_expires_at=datetime.now(UTC)),
    "extra field synced_at": message(synced_at=datetime.now(UTC)),
    "text missing": message(text=_MISSING),
    "role missing": message(role=_MISSING),
    "created_at missing": message(created_at=_MISSING),
    "role system": message(role="system"),
    "text too long": message(text="x" * (MESSAGE_MAX_CHARS + 1)),
    "text blank": message(text="   "),
    "text not a string": message(text=42),
    "created_at not a timestamp": message(created_at="2026-01-01T00:00:00Z"),
    "created_at in the future": message(created_at=datetime.now(UTC) + timedelta(days=1)),
    "channel too long": message(channel="c" * 65),
    "channel empty": message(channel=""),
    "speaker too long": message(speaker="s" * 65),
    "speaker blank": message(speaker="  "),
    "speaker not a string": message(speaker=7),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_a_malformed_message_is_denied(alice: tuple[str, Client], case: str) -> None:
    uid, client = alice
    assert client.create(messages_of(uid), "m1", BAD_MESSAGES[case]).denied


def test_writing_under_another_user_or_signed_out_is_denied(
    alice: tuple[str, Client], bob: tuple[str, Client], rules_host: str
) -> None:
    (alice_uid, alice_client), (bob_uid, _) = alice, bob
    assert alice_client.create(messages_of(bob_uid), "m1", message()).denied
    assert Client(rules_host, None).create(messages_of(alice_uid), "m1", message()).denied
    assert Client(rules_host, None).create(messages_of(bob_uid), "m1", message()).denied


def test_a_message_can_never_be_changed_or_deleted_by_its_owner(alice: tuple[str, Client]) -> None:
    uid, client = alice
    path = f"{messages_of(uid)}/m1"
    assert client.create(messages_of(uid), "m1", message()).status == 200
    assert client.patch(path, {"sync": True}).denied
    assert client.patch(path, {"sync": False}).denied
    assert client.patch(path, {"text": "edited"}).denied
    assert client.delete(path).denied
    assert client.create(messages_of(uid), "m1", message()).status == 409, "create never overwrites"
    assert client.get(path).body["fields"]["text"] == {"stringValue": "I adopted a dog called Biscuit."}


def test_batches_trigger_events_and_other_documents_are_server_only(alice: tuple[str, Client]) -> None:
    uid, client = alice
    conversation = f"users/{uid}/characters/{CHAR}"
    assert client.create(f"{conversation}/batches", "b1", {"status": "succeeded"}).denied
    assert client.get(f"{conversation}/batches/b1").denied
    assert client.create("trigger_events", "e1", {"event_id": "e1"}).denied
    assert client.get("trigger_events/e1").denied
    assert client.create(f"users/{uid}/characters", CHAR, {"name": CHAR}).denied
    assert client.create("users", uid, {"name": "Alice"}).denied


def test_reading_another_users_messages_is_denied(
    alice: tuple[str, Client], bob: tuple[str, Client], rules_host: str
) -> None:
    (alice_uid, alice_client), (_, bob_client) = alice, bob
    assert alice_client.create(messages_of(alice_uid), "m1", message()).status == 200
    assert bob_client.get(f"{messages_of(alice_uid)}/m1").denied
    assert bob_client.get(messages_of(alice_uid)).denied
    assert Client(rules_host, None).get(f"{messages_of(alice_uid)}/m1").denied
    # Across every conversation at once, even one's own: the rules only open single conversations.
    assert alice_client.query_all_messages().denied
