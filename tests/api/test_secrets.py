"""Secrets never appear in logs, error answers, batch records or /memory/health.

One session on the OpenAI path (a local server speaking its wire format) with every kind of secret
configured, every log at DEBUG: good and bad credentials, a refused trigger, a rate limit, and an LLM
that fails with an error quoting the key it was sent, as a careless server might.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from scripts.sample_conversation import MAYA
from services.container import Container
from tests.conftest import PROJECT, make_settings
from tests.support.access import ADMIN_KEY, TRIGGER_SECRET, bearer, id_token, key_entries
from tests.support.chat import save_turns, wait_until
from tests.support.openai_wire import OpenAIWireServer, RecordedRequest, Reply, error

CHAR = "meher"
OPENAI_KEY = "sk-test-openai-secret-5b7e2c9d"
DEV_KEY = "rk_dev-secret-key-for-the-log-test-3f9a"
QDRANT_KEY = "qdrant-secret-key-81c0"


def echo_the_key(request: RecordedRequest) -> Reply:
    presented = request.headers.get("authorization", "")
    return error(401, f"Incorrect API key provided: {presented}", code="invalid_api_key")


def test_no_secret_in_logs_answers_records_or_health(
    emulator_host: str,
    tmp_path: Path,
    user_id: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9")
    token = id_token(PROJECT, user_id)
    secrets = {
        "openai key": OPENAI_KEY,
        "trigger secret": TRIGGER_SECRET,
        "admin key": ADMIN_KEY,
        "dev key": DEV_KEY,
        "qdrant key": QDRANT_KEY,
        "id token": token,
    }
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    with OpenAIWireServer(api_key=OPENAI_KEY) as wire:
        settings = make_settings(
            emulator_host,
            tmp_path,
            openai_api_key=OPENAI_KEY,
            openai_base_url=wire.base_url,
            openai_max_retries=0,
            recall_api_keys=key_entries(admin=4),
            recall_dev_api_key=DEV_KEY,
            qdrant_api_key=QDRANT_KEY,
            batch_retry_base_seconds=0.0,
        )
        seen += [str(settings), repr(settings)]
        with Container.build(settings) as container, TestClient(create_app(container=container)) as api:
            # A batch that works, then one whose LLM quotes the key back in its error.
            save_turns(container.store, user_id, CHAR, MAYA[:25])
            calls = [api.post(f"/memory/check-batch/{user_id}/{CHAR}", headers=bearer(DEV_KEY))]
            wait_until(lambda: container.store.count_unsynced(user_id, CHAR) == 0, "the first batch")
            wire.script_chat(echo_the_key)
            save_turns(container.store, user_id, CHAR, MAYA[:25])
            calls.append(api.post(f"/memory/check-batch/{user_id}/{CHAR}", headers=bearer(DEV_KEY)))
            wait_until(lambda: (container.store.last_batch(user_id, CHAR) or {}).get("status") == "failed", "failure")
            calls += [
                api.get(f"/memory/stats/{user_id}/{CHAR}", headers=bearer(ADMIN_KEY)),
                api.get(f"/memory/stats/{user_id}/{CHAR}", headers=bearer(token)),
                api.get(f"/memory/stats/{user_id}-other/{CHAR}", headers=bearer(token)),
                api.get(f"/memory/stats/{user_id}/{CHAR}", headers=bearer(ADMIN_KEY[:-1] + "x")),
                api.get(f"/memory/stats/{user_id}/{CHAR}", headers=bearer(TRIGGER_SECRET)),
                api.post(
                    "/firebase/message-created",
                    json={"user_id": user_id, "character_name": CHAR},
                    headers=bearer(TRIGGER_SECRET + "x"),
                ),
                api.post(
                    "/firebase/message-created",
                    json={"user_id": user_id, "character_name": CHAR},
                    headers=bearer(ADMIN_KEY),
                ),
                *[
                    api.get(f"/memory/search/{user_id}/{CHAR}", params={"query": "x"}, headers=bearer(ADMIN_KEY))
                    for _ in range(4)
                ],
                api.get("/memory/health"),
            ]
            expected = [200, 200, 200, 200, 403, 401, 403, 401, 403, 200, 200, 200, 429, 503]
            assert [c.status_code for c in calls] == expected
            health = calls[-1].json()
            assert health["components"]["llm"]["status"] == "degraded"
            assert "Incorrect API key provided" in health["components"]["llm"]["detail"]
            seen += [c.text for c in calls] + [str(dict(c.headers)) for c in calls]
            seen.append(str(container.store.last_batch(user_id, CHAR)))
    seen.append(caplog.text)
    everything = "\n".join(seen)
    assert "refused" in caplog.text and "Incorrect API key provided" in caplog.text  # the logs did run
    leaked = [name for name, value in secrets.items() if value in everything]
    assert leaked == []
