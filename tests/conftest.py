"""Fixtures on real components: Google's Firestore emulator, Qdrant Edge, all-MiniLM-L6-v2.

The emulator starts once per session on a free port (or RECALL_TEST_FIRESTORE_EMULATOR_HOST names a
running one). If it cannot start, every test that needs it fails with the reason: nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import firestore

from scripts import firestore_emulator
from services.config import Settings
from services.container import Container, build_firestore_client
from services.embedder import LocalEmbedder
from services.message_store import MessageStore
from tests.support.access import TRIGGER_SECRET, key_entries

PROJECT = "demo-recall-test"


@pytest.fixture(scope="session")
def emulator_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("RECALL_TEST_FIRESTORE_EMULATOR_HOST")
    if existing:
        firestore_emulator.wait_ready(existing, timeout_s=10)
        yield existing
        return
    log_path = tmp_path_factory.mktemp("emulator") / "firestore-emulator.log"
    try:
        process, host = firestore_emulator.start(log_path=log_path)
    except firestore_emulator.EmulatorError as exc:
        pytest.fail(f"the Firestore emulator is required and could not start: {exc} (log: {log_path})")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    yield host
    firestore_emulator.stop(process)


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def make_settings(emulator_host: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "google_cloud_project": PROJECT,
        "firestore_emulator_host": emulator_host,
        "qdrant_path": tmp_path / "qdrant",
        "listener_enabled": False,
        "openai_api_key": None,
        "qdrant_url": None,
        "recall_api_keys": key_entries(),
        "recall_trigger_secret": TRIGGER_SECRET,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(emulator_host: str, tmp_path: Path) -> Settings:
    return make_settings(emulator_host, tmp_path)


@pytest.fixture(scope="session")
def firestore_client(emulator_host: str) -> firestore.Client:
    return build_firestore_client(make_settings(emulator_host, Path("/nonexistent")))


@pytest.fixture
def store(firestore_client: firestore.Client) -> MessageStore:
    return MessageStore(firestore_client)


@pytest.fixture
def container(settings: Settings, embedder: LocalEmbedder) -> Iterator[Container]:
    built = Container.build(settings, embedder=embedder)
    yield built
    built.close()


@pytest.fixture
def clean_firestore(emulator_host: str) -> None:
    """An empty database, for tests whose listener would otherwise see other tests' messages."""
    firestore_emulator.clear(emulator_host, PROJECT)


@pytest.fixture
def user_id() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"
