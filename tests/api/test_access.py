"""Who may call what: service keys by scope, end users' Firebase ID tokens, 401 vs 403, rate limits, body size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from services.auth import digest, refuse_public_without_keys
from services.config import ApiKeyEntry
from services.container import Container
from services.embedder import LocalEmbedder
from services.errors import ConfigurationError
from tests.conftest import PROJECT, make_settings
from tests.support.access import ADMIN_KEY, TRIGGER_SECRET, bearer, id_token, key_entries, key_of

CHAR = "meher"
REPO = Path(__file__).resolve().parents[2]


def calls(user: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every endpoint that takes credentials, with a valid request for `user`."""
    return {
        "write": ("POST", f"/messages/{user}/{CHAR}", {"json": {"role": "user", "text": "I love sailing"}}),
        "search": ("GET", f"/memory/search/{user}/{CHAR}", {"params": {"query": "sailing"}}),
        "stats": ("GET", f"/memory/stats/{user}/{CHAR}", {}),
        "context": ("POST", f"/memory/context/{user}/{CHAR}", {"json": {"current_message": "hi"}}),
        "check-batch": ("POST", f"/memory/check-batch/{user}/{CHAR}", {}),
        "sweep": ("POST", "/memory/sweep", {}),
        "message-created": ("POST", "/firebase/message-created", {"json": {"user_id": user, "character_name": CHAR}}),
    }


# The scope each endpoint needs, and the endpoints each test key may call.
ALLOWED = {
    "admin": {"write", "search", "stats", "context", "check-batch", "sweep"},
    "reader": {"search", "stats", "context"},
    "writer": {"write"},
    "trigger": {"check-batch"},
}


def call(api: TestClient, name: str, user: str, credential: str | None) -> Any:
    method, path, kwargs = calls(user)[name]
    headers = bearer(credential) if credential is not None else {}
    return api.request(method, path, headers=headers, **kwargs)


@pytest.fixture
def emulated_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    # firebase-admin accepts the Auth emulator's unsigned tokens only while this is set (nothing listens there:
    # verifying a token needs no call to the emulator).
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")


@pytest.fixture
def api(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as client:
        yield client


@pytest.mark.parametrize("endpoint", list(calls("u")))
def test_no_credentials_or_unknown_ones_are_401(api: TestClient, user_id: str, endpoint: str) -> None:
    for credential in (None, "rk_not-a-key", "not-a-key", "a.b.c", ""):
        response = call(api, endpoint, user_id, credential)
        assert response.status_code == 401, (credential, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # A scheme other than Bearer is no credential either.
    method, path, kwargs = calls(user_id)[endpoint]
    basic = api.request(method, path, headers={"Authorization": f"Basic {ADMIN_KEY}"}, **kwargs)
    assert basic.status_code == 401


def test_health_and_docs_need_no_credentials(api: TestClient) -> None:
    assert api.get("/memory/health").status_code == 200
    assert api.get("/openapi.json").status_code == 200
    assert api.get("/docs").status_code == 200


@pytest.mark.parametrize("key", list(ALLOWED))
def test_each_scope_opens_its_endpoints_and_no_others(api: TestClient, user_id: str, key: str) -> None:
    for endpoint in calls(user_id):
        if endpoint == "message-created":
            continue
        response = call(api, endpoint, user_id, key_of(key))
        if endpoint in ALLOWED[key]:
            assert response.status_code in (200, 201), (endpoint, response.text)
        else:
            assert response.status_code == 403, (endpoint, response.text)
            assert "scope" in response.json()["detail"]


def test_a_read_only_key_writes_nothing(api: TestClient, container: Container, user_id: str) -> None:
    assert call(api, "write", user_id, key_of("reader")).status_code == 403
    assert container.store.count_unsynced(user_id, CHAR) == 0


@pytest.mark.usefixtures("emulated_auth")
def test_an_end_user_reads_and_writes_only_their_own_data(api: TestClient, container: Container) -> None:
    alice, bob = "alice-" + digest("a")[:8], "bob-" + digest("b")[:8]
    token = id_token(PROJECT, alice)
    for endpoint in ("write", "search", "stats", "context"):
        assert call(api, endpoint, alice, token).status_code in (200, 201), endpoint
        refused = call(api, endpoint, bob, token)
        assert refused.status_code == 403, (endpoint, refused.text)
        assert "another user" in refused.json()["detail"]
    for endpoint in ("check-batch", "sweep", "message-created"):
        assert call(api, endpoint, alice, token).status_code == 403, endpoint
    assert container.store.count_unsynced(alice, CHAR) == 1
    assert container.store.count_unsynced(bob, CHAR) == 0


@pytest.mark.usefixtures("emulated_auth")
@pytest.mark.parametrize(
    "claims",
    [{"exp": 1_000_000_000}, {"aud": "demo-someone-else"}, {"iss": "https://securetoken.google.com/x"}, {"sub": ""}],
    ids=["expired", "another project", "another issuer", "no user"],
)
def test_an_invalid_id_token_is_401(api: TestClient, user_id: str, claims: dict[str, Any]) -> None:
    response = call(api, "stats", user_id, id_token(PROJECT, user_id, **claims))
    assert response.status_code == 401, response.text


def test_outside_the_auth_emulator_an_unsigned_token_is_401(
    api: TestClient, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    assert call(api, "stats", user_id, id_token(PROJECT, user_id)).status_code == 401


@pytest.mark.usefixtures("emulated_auth")
def test_with_firebase_auth_off_id_tokens_are_401(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str
) -> None:
    settings = make_settings(emulator_host, tmp_path, firebase_auth_enabled=False)
    with Container.build(settings, embedder=embedder) as container, TestClient(create_app(container=container)) as api:
        assert call(api, "stats", user_id, id_token(PROJECT, user_id)).status_code == 401
        assert call(api, "stats", user_id, ADMIN_KEY).status_code == 200


def test_the_trigger_secret_is_no_key(api: TestClient, user_id: str) -> None:
    for endpoint in ("write", "search", "check-batch", "sweep"):
        assert call(api, endpoint, user_id, TRIGGER_SECRET).status_code == 403, endpoint


def test_rate_limit_per_key_and_per_kind_with_retry_after(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str
) -> None:
    settings = make_settings(emulator_host, tmp_path, recall_api_keys=key_entries(admin=3, reader=0))
    with Container.build(settings, embedder=embedder) as container, TestClient(create_app(container=container)) as api:
        answers = [call(api, "search", user_id, ADMIN_KEY).status_code for _ in range(3)]
        assert answers == [200, 200, 200]
        limited = call(api, "context", user_id, ADMIN_KEY)  # search, stats and context share the read allowance
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 20  # 3 a minute: one call back every 20 s
        assert "3 read calls a minute" in limited.json()["detail"]
        # Writes have their own allowance; other keys their own buckets; a key with 0 has no limit.
        assert call(api, "write", user_id, ADMIN_KEY).status_code == 201
        assert all(call(api, "search", user_id, key_of("reader")).status_code == 200 for _ in range(10))
        # The trigger and the health check are not limited.
        assert call(api, "check-batch", user_id, ADMIN_KEY).status_code == 200
        assert api.get("/memory/health").status_code == 200


@pytest.mark.usefixtures("emulated_auth")
def test_rate_limit_per_end_user(emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str) -> None:
    settings = make_settings(emulator_host, tmp_path, rate_limit_user_per_minute=2)
    with Container.build(settings, embedder=embedder) as container, TestClient(create_app(container=container)) as api:
        token, other = id_token(PROJECT, user_id), id_token(PROJECT, user_id + "-2")
        assert [call(api, "stats", user_id, token).status_code for _ in range(3)] == [200, 200, 429]
        assert call(api, "stats", user_id + "-2", other).status_code == 200


def test_keys_from_a_file(emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str) -> None:
    key = "rk_from-a-file-000000000000000000000000000000000"
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"name": "from-file", "sha256": digest(key), "scopes": ["read"]}]))
    settings = make_settings(emulator_host, tmp_path, recall_api_keys=[], recall_api_keys_file=path)
    with Container.build(settings, embedder=embedder) as container, TestClient(create_app(container=container)) as api:
        assert call(api, "stats", user_id, key).status_code == 200
        assert call(api, "write", user_id, key).status_code == 403
        assert call(api, "stats", user_id, ADMIN_KEY).status_code == 401


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("not json", "is not a JSON list"),
        (json.dumps([{"name": "k", "sha256": "abc", "scopes": ["read"]}]), "is not a JSON list"),
        (json.dumps([{"name": "k", "sha256": "0" * 64, "scopes": ["root"]}]), "is not a JSON list"),
        (json.dumps([{"name": "k", "sha256": "0" * 64, "scopes": ["read"], "key": "rk_x"}]), "is not a JSON list"),
        (json.dumps([{"name": n, "sha256": "0" * 64, "scopes": ["read"]} for n in ("k", "k")]), "repeated: k"),
        (None, "cannot read RECALL_API_KEYS_FILE"),
    ],
    ids=["not json", "not a digest", "unknown scope", "plain key field", "repeated name", "missing file"],
)
def test_a_bad_key_file_stops_start_up_with_what_to_fix(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, content: str | None, complaint: str
) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_text(content)
    settings = make_settings(emulator_host, tmp_path, recall_api_keys_file=path)
    with (
        Container.build(settings, embedder=embedder) as container,
        pytest.raises(ConfigurationError, match=complaint),
        TestClient(create_app(container=container)),
    ):
        pass


def test_the_dev_key_has_every_scope_on_the_emulator_and_is_refused_on_real_firestore(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str
) -> None:
    dev = "rk_dev-key-for-this-test-00000000000000000000000"
    settings = make_settings(emulator_host, tmp_path, recall_api_keys=[], recall_dev_api_key=dev)
    with Container.build(settings, embedder=embedder) as container, TestClient(create_app(container=container)) as api:
        for endpoint in ALLOWED["admin"]:
            assert call(api, endpoint, user_id, dev).status_code in (200, 201), endpoint
    production = make_settings(emulator_host, tmp_path, recall_dev_api_key=dev, firestore_emulator_host=None)
    with (
        pytest.raises(ConfigurationError, match="RECALL_DEV_API_KEY is for local development"),
        TestClient(create_app(production, container=None)),
    ):
        pass


def test_serving_beyond_loopback_needs_configured_keys(emulator_host: str, tmp_path: Path) -> None:
    bare = make_settings(emulator_host, tmp_path, recall_api_keys=[], recall_dev_api_key="rk_" + "d" * 40)
    refuse_public_without_keys("127.0.0.1", bare)
    with pytest.raises(ConfigurationError, match=r"refusing to serve on 0\.0\.0\.0 without service keys"):
        refuse_public_without_keys("0.0.0.0", bare)
    entry = ApiKeyEntry(name="voice", sha256=digest("rk_x"), scopes=["read"])
    refuse_public_without_keys("0.0.0.0", make_settings(emulator_host, tmp_path, recall_api_keys=[entry]))


def test_a_body_over_the_limit_is_413_and_writes_nothing(
    emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str
) -> None:
    settings = make_settings(emulator_host, tmp_path, max_body_bytes=4096)
    with Container.build(settings, embedder=embedder) as container, TestClient(create_app(container=container)) as api:
        url = f"/messages/{user_id}/{CHAR}"
        big = json.dumps({"role": "user", "text": "x" * 5000}).encode()
        declared = api.post(url, content=big, headers={**bearer(ADMIN_KEY), "content-type": "application/json"})
        assert declared.status_code == 413, declared.text
        assert "MAX_BODY_BYTES" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield big[:3000]
            yield big[3000:]

        streamed = api.post(url, content=chunks(), headers={**bearer(ADMIN_KEY), "content-type": "application/json"})
        assert streamed.status_code == 413, streamed.text
        assert container.store.count_unsynced(user_id, CHAR) == 0
        small = api.post(url, json={"role": "user", "text": "x" * 3000}, headers=bearer(ADMIN_KEY))
        assert small.status_code == 201


def test_the_production_entry_point_refuses_a_public_interface_without_keys() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECALL_")}
    env.update({"HOST": "0.0.0.0", "PORT": "1"})
    done = subprocess.run([sys.executable, "-m", "api"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "refusing to serve on 0.0.0.0 without service keys" in done.stderr
