"""Bad input is a clear 4xx and writes nothing; any Unicode that is text round-trips exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from services.container import Container
from tests.support.access import ADMIN_KEY, TRIGGER_SECRET, bearer

CHAR = "meher"
JSON = {"content-type": "application/json"}

# One of each kind: scripts, right-to-left, combining marks, emoji sequences, astral planes, invisible
# and control characters that are still text.
UNICODE = {
    "cjk": "我喜欢在山里徒步。日本語もできます",
    "rtl": "אני אוהבת ים — مرحبا بالعالم",
    "combining": "e\u0301 vs \u00e9, Z\u0351\u0362a\u0337l\u0336g\u0338o",
    "emoji zwj": "👩‍👩‍👧 🏳️‍🌈 👍🏽 🇵🇹",
    "astral": "𝕬𝖑𝖕𝖍𝖆 𓀀 🀄 \U0010fffd",
    "invisible": "zero\u200bwidth\u200d joiner \ufeffbom \u2028line\u2029para",
    "controls": "tab\tnew\nline\r\x00nul\x1besc",
    "mixed": "Ünïcödé “quotes” ‘apostrophes’ — ½ ∑ √ ∞",
}


@pytest.fixture
def api(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container), headers=bearer(ADMIN_KEY)) as client:
        yield client


def stored_text(container: Container, user: str, message_id: str) -> str:
    doc = (
        container.firestore.collection("users")
        .document(user)
        .collection("characters")
        .document(CHAR)
        .collection("messages")
        .document(message_id)
        .get()
    )
    text: str = doc.get("text")
    return text


@pytest.mark.parametrize("kind", list(UNICODE))
def test_every_kind_of_unicode_round_trips(api: TestClient, container: Container, user_id: str, kind: str) -> None:
    text = UNICODE[kind]
    created = api.post(f"/messages/{user_id}/{CHAR}", json={"role": "user", "text": text})
    assert created.status_code == 201, created.text
    assert created.json()["text"] == text
    assert stored_text(container, user_id, created.json()["id"]) == text
    ctx = api.post(f"/memory/context/{user_id}/{CHAR}", json={"current_message": text}).json()
    assert [t["text"] for t in ctx["recent_turns"]] == [text]


@pytest.mark.parametrize("user", ["mayá", "用户-7", "משתמש", "👩‍👩‍👧", "e\u0301", "a b", "x" * 128])
def test_unicode_ids_round_trip_through_the_path(api: TestClient, container: Container, user: str) -> None:
    created = api.post(f"/messages/{user}/{CHAR}", json={"role": "user", "text": "hi", "message_id": user})
    assert created.status_code == 201, created.text
    assert (created.json()["user_id"], created.json()["id"]) == (user, user)
    assert api.get(f"/memory/stats/{user}/{CHAR}").json()["unsynced_messages"] >= 1
    container.firestore.recursive_delete(container.firestore.collection("users").document(user))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages/{u}/meher", '{"role": "user", "text": "a\\ud800b"}'),
        ("/messages/{u}/meher", '{"role": "user", "text": "hi", "message_id": "x\\udfff"}'),
        ("/messages/{u}/meher", '{"role": "user", "text": "hi", "channel": "\\udc00"}'),
        ("/memory/context/{u}/meher", '{"current_message": "\\ud83d"}'),
        ("/memory/context/{u}/meher", '{"current_message": "hi", "base_system_prompt": "\\ude00"}'),
        ("/firebase/message-created", '{"user_id": "\\ud800", "character_name": "meher"}'),
        ("/firebase/message-created", '{"user_id": "{u}", "character_name": "meher", "event_id": "\\ud800"}'),
    ],
)
def test_lone_surrogates_are_422_not_a_crash(
    api: TestClient, container: Container, user_id: str, path: str, body: str
) -> None:
    headers = {**JSON, **(bearer(TRIGGER_SECRET) if path.startswith("/firebase") else {})}
    response = api.post(path.replace("{u}", user_id), content=body.replace("{u}", user_id), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "string_unicode"
    assert container.store.count_unsynced(user_id, CHAR) == 0


def test_422s_do_not_echo_the_input(api: TestClient, user_id: str) -> None:
    secretish = "sk-live-" + "q" * 9000
    response = api.post(f"/messages/{user_id}/{CHAR}", json={"role": "user", "text": secretish})
    assert response.status_code == 422
    assert "sk-live-" not in response.text and len(response.text) < 500


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages/{u}/meher", {"role": "user", "text": "hi", "sync": True}),
        ("/messages/{u}/meher", {"role": "user", "text": "hi", "user_id": "someone-else"}),
        ("/memory/context/{u}/meher", {"current_message": "hi", "limit": 50}),
        ("/memory/context/{u}/meher", {"current_message": "x" * 8001}),
        ("/memory/context/{u}/meher", {"current_message": "hi", "base_system_prompt": "x" * 20_001}),
        ("/memory/context/{u}/meher", {"current_message": "hi", "channel": "a/b"}),
        ("/messages/{u}/meher", {"role": "user", "text": "hi", "message_id": "x" * 129}),
        ("/messages/{u}/meher", {"role": "user", "text": "hi", "created_at": "2026-11-20T10:00:00"}),
        ("/messages/{u}/meher", {"role": "user", "text": "hi", "created_at": "yesterday"}),
        ("/messages/{u}/meher", {"role": "user", "text": 42}),
        ("/messages/{u}/meher", [{"role": "user", "text": "hi"}]),
    ],
    ids=[
        "sync field",
        "user_id field",
        "unknown context field",
        "long message",
        "long prompt",
        "channel with /",
        "long message id",
        "naive time",
        "not a time",
        "text not a string",
        "a list",
    ],
)
def test_unknown_fields_and_out_of_bounds_values_are_422(
    api: TestClient, container: Container, user_id: str, path: str, body: object
) -> None:
    response = api.post(path.replace("{u}", user_id), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert container.store.count_unsynced(user_id, CHAR) == 0


@pytest.mark.parametrize("raw", ["%ED%A0%80", "%FF%FE", "%C0%AF", "a%00b", "%2F", "%252F"])
def test_odd_bytes_in_the_path_never_reach_firestore(api: TestClient, container: Container, raw: str) -> None:
    response = api.post(f"/messages/{raw}/{CHAR}", json={"role": "user", "text": "hi"})
    assert response.status_code in (201, 404, 422), response.text
    if response.status_code == 201:  # decoded to harmless text: it is stored under exactly that id
        user = response.json()["user_id"]
        assert "/" not in user and "\x00" not in user
        container.firestore.recursive_delete(container.firestore.collection("users").document(user))


def test_the_body_must_be_json(api: TestClient, user_id: str) -> None:
    broken = api.post(f"/messages/{user_id}/{CHAR}", content=b'{"role": "user", "text": ', headers=JSON)
    assert broken.status_code in (400, 422), broken.text
    not_utf8 = api.post(f"/messages/{user_id}/{CHAR}", content=b'{"role": "user", "text": "\xff"}', headers=JSON)
    assert not_utf8.status_code in (400, 422), not_utf8.text
    assert json.loads(not_utf8.text)["detail"]
