"""The Cloud Function in functions/main.py, invoked with real CloudEvents against the real API.

Each event is built as Firestore's trigger delivers it: a CloudEvent whose data is a protobuf
`DocumentEventData` holding the document as it stands in the emulator (read back through the REST API).
The function then calls the API, served by uvicorn on a loopback port, over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import firebase_admin
import pytest
import yaml
from cloudevents.http import CloudEvent
from google.cloud import firestore
from google.events.cloud.firestore import Document, DocumentEventData

import functions.main as fn
from scripts.firestore_emulator import free_port
from services.container import Container
from services.trigger_events import COLLECTION
from tests.firebase.conftest import PROJECT, serve_api
from tests.firebase.emulator_rest import get_document
from tests.support.access import TRIGGER_SECRET as SECRET
from tests.support.chat import filler_turns, wait_until, write_turns_at_once

ROOT = Path(__file__).resolve().parents[2]
CHAR = "meher"


def created_event(host: str, path: str, *, event_id: str | None = None, time: datetime | None = None) -> CloudEvent:
    """The CloudEvent Firestore sends for the creation of the document at `path`."""
    document = get_document(host, PROJECT, path)
    data = DocumentEventData(value=Document.from_json(json.dumps(document)))
    attributes = {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": f"//firestore.googleapis.com/projects/{PROJECT}/databases/(default)",
        "type": "google.cloud.firestore.document.v1.created",
        "subject": f"documents/{path}",
        "time": time.isoformat() if time else document["updateTime"],
        "datacontenttype": "application/protobuf",
        "dataschema": "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto",
        "location": "nam5",
        "project": PROJECT,
        "database": "(default)",
        "namespace": "(default)",
        "document": path,
    }
    return CloudEvent(attributes, DocumentEventData.serialize(data))


def deliver(event: CloudEvent) -> None:
    """Invoke the deployed entry point as the platform does: with the raw CloudEvent."""
    # The SDK annotates the decorated function with its own Event type, but its wrapper takes the raw one.
    fn.on_message_created(event)  # type: ignore[arg-type]


@pytest.fixture
def firebase_app(emulator_host: str) -> Iterator[None]:
    # The SDK builds a snapshot with firebase_admin's default app, as on the platform; naming the project
    # here keeps it from looking for Google credentials.
    app = firebase_admin.initialize_app(options={"projectId": PROJECT})
    yield
    firebase_admin.delete_app(app)


@pytest.fixture
def deployed(api_url: str, firebase_app: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The function's params and secret, in the environment variables the SDK reads them from."""
    monkeypatch.setenv("RECALL_API_URL", api_url)
    monkeypatch.setenv("RECALL_TRIGGER_SECRET", SECRET)
    return api_url


def conversation(client: firestore.Client, user_id: str, n: int) -> list[str]:
    """n messages written straight into Firestore, as an app would; their document paths."""
    ids = write_turns_at_once(client, user_id, CHAR, filler_turns(n))
    return [f"users/{user_id}/characters/{CHAR}/messages/{i}" for i in ids]


def logged(capture: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    out, err = capture.readouterr()
    return [json.loads(line) for line in (out + err).splitlines() if line.startswith("{")]


def test_the_manifest_declares_the_trigger_the_secret_and_retries() -> None:
    # As the Firebase CLI discovers it: main.py alone, loaded from the functions directory in a fresh
    # interpreter, with none of the repository on its path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    discover = "from firebase_functions.private import serving as s; print(s.functions_as_yaml(s.get_functions()))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", discover], cwd=ROOT / "functions", env=env, capture_output=True, check=True
    )
    manifest = yaml.safe_load(out.stdout)
    endpoint = manifest["endpoints"]["on_message_created"]
    assert endpoint["eventTrigger"] == {
        "eventType": "google.cloud.firestore.document.v1.created",
        "eventFilters": {"database": "(default)", "namespace": "(default)"},
        "eventFilterPathPatterns": {"document": "users/{user_id}/characters/{character_name}/messages/{message_id}"},
        "retry": True,
    }
    assert endpoint["secretEnvironmentVariables"] == [{"key": "RECALL_TRIGGER_SECRET"}]
    assert {p["name"]: p["type"] for p in manifest["params"]} == {
        "RECALL_API_URL": "string",
        "RECALL_TRIGGER_SECRET": "secret",
    }
    pins = (ROOT / "functions" / "requirements.txt").read_text().split()
    assert pins == ["firebase-functions==0.6.0"]
    assert "firebase-functions==0.6.0" in (ROOT / "requirements.txt").read_text().split()


def test_a_created_message_reaches_the_api_and_the_batch_runs(
    deployed: str,
    container: Container,
    firestore_client: firestore.Client,
    emulator_host: str,
    user_id: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    paths = conversation(firestore_client, user_id, 25)
    event = created_event(emulator_host, paths[-1])
    deliver(event)

    wait_until(lambda: container.store.count_synced(user_id, CHAR) == 25, "the batch to sync all 25 messages")
    assert container.store.count_unsynced(user_id, CHAR) == 0
    batch = container.store.last_batch(user_id, CHAR)
    assert batch is not None and batch["status"] == "succeeded" and len(batch["message_ids"]) == 25
    entry = next(e for e in logged(capfd) if e.get("message") == "trigger forwarded")
    assert (entry["event_id"], entry["batch_started"], entry["duplicate"]) == (event["id"], True, False)
    recorded = [d.to_dict() for d in firestore_client.collection(COLLECTION).stream()]
    assert any(r and r["event_id"] == event["id"] for r in recorded)


def test_a_redelivered_event_starts_no_second_batch(
    deployed: str,
    container: Container,
    firestore_client: firestore.Client,
    emulator_host: str,
    user_id: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    paths = conversation(firestore_client, user_id, 24)
    first = created_event(emulator_host, paths[-1])
    deliver(first)
    assert container.store.last_batch(user_id, CHAR) is None, "24 messages are below the threshold"

    # A 25th message arrives; the 24th's event is delivered again, before the 25th's.
    paths += conversation(firestore_client, user_id, 1)
    capfd.readouterr()
    deliver(created_event(emulator_host, paths[-2], event_id=first["id"]))
    entry = next(e for e in logged(capfd) if e.get("message") == "trigger forwarded")
    assert (entry["batch_started"], entry["duplicate"]) == (False, True)
    assert container.store.last_batch(user_id, CHAR) is None
    assert container.store.count_unsynced(user_id, CHAR) == 25

    deliver(created_event(emulator_host, paths[-1]))
    wait_until(lambda: container.store.count_synced(user_id, CHAR) == 25, "the one batch")
    batches = list(container.store.conversation(user_id, CHAR).collection("batches").stream())
    assert len(batches) == 1


def test_a_wrong_secret_is_refused_and_not_retried(
    deployed: str,
    container: Container,
    firestore_client: firestore.Client,
    emulator_host: str,
    user_id: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECALL_TRIGGER_SECRET", "not-the-secret")
    paths = conversation(firestore_client, user_id, 25)
    deliver(created_event(emulator_host, paths[-1]))  # returns: a retry would get 401 again

    error = next(e for e in logged(capfd) if e.get("severity") == "ERROR")
    assert error["status"] == 401 and "not retrying" in str(error["message"])
    assert container.store.last_batch(user_id, CHAR) is None
    assert container.store.count_unsynced(user_id, CHAR) == 25


def test_an_api_that_is_down_or_overloaded_makes_the_platform_retry(
    deployed: str,
    container: Container,
    firestore_client: firestore.Client,
    emulator_host: str,
    user_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = conversation(firestore_client, user_id, 25)
    event = created_event(emulator_host, paths[-1])

    monkeypatch.setenv("RECALL_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(urllib.error.URLError):
        deliver(event)

    # uvicorn sheds load with a 503 once a connection is over its concurrency limit: 1 here, so always.
    with serve_api(container, limit_concurrency=1) as overloaded:
        monkeypatch.setenv("RECALL_API_URL", overloaded)
        with pytest.raises(urllib.error.HTTPError) as raised:
            deliver(event)
    assert raised.value.code == 503
    assert container.store.last_batch(user_id, CHAR) is None

    # The platform's retry of the same event, once the API is back, does the work.
    monkeypatch.setenv("RECALL_API_URL", deployed)
    deliver(event)
    wait_until(lambda: container.store.count_synced(user_id, CHAR) == 25, "the batch after the retry")


def test_an_event_too_old_to_retry_is_dropped(
    deployed: str,
    container: Container,
    firestore_client: firestore.Client,
    emulator_host: str,
    user_id: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    paths = conversation(firestore_client, user_id, 25)
    old = datetime.now(UTC) - fn.MAX_EVENT_AGE - timedelta(minutes=1)
    deliver(created_event(emulator_host, paths[-1], time=old))

    assert any(e.get("severity") == "WARNING" and "too old" in str(e["message"]) for e in logged(capfd))
    assert container.store.last_batch(user_id, CHAR) is None
    assert container.store.count_unsynced(user_id, CHAR) == 25


def test_a_function_without_its_configuration_fails_loudly(
    firebase_app: None, firestore_client: firestore.Client, emulator_host: str, user_id: str
) -> None:
    assert "RECALL_API_URL" not in os.environ
    paths = conversation(firestore_client, user_id, 1)
    with pytest.raises(RuntimeError, match="RECALL_API_URL"):
        deliver(created_event(emulator_host, paths[-1]))


def test_the_helpers() -> None:
    call = fn.build_trigger_call("https://recall.example/", "s", "u1", "meher", "evt-1")
    assert call.url == "https://recall.example/firebase/message-created"
    assert call.headers["Authorization"] == "Bearer s" and call.headers["Idempotency-Key"] == "evt-1"
    assert json.loads(call.body) == {"user_id": "u1", "character_name": "meher", "event_id": "evt-1"}
    now = datetime.now(UTC)
    assert not fn.too_old(now - fn.MAX_EVENT_AGE, now) and fn.too_old(now - fn.MAX_EVENT_AGE * 2, now)
    refusals = {
        code: fn.final_refusal(urllib.error.HTTPError("u", code, "", Message(), None)) for code in (401, 422, 429, 503)
    }
    assert refusals == {401: True, 422: True, 429: False, 503: False}
