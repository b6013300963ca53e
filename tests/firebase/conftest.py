"""The API with a trigger secret, served for real on a loopback port for the Cloud Function to call."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from google.cloud import firestore

from api.main import create_app
from scripts.firestore_emulator import free_port
from services.config import Settings
from services.container import Container, build_firestore_client
from tests.conftest import make_settings

# Its own database: these tests leave unsynced conversations behind (refused or dropped triggers), which
# no other test's sweep or listener should find.
PROJECT = "demo-recall-firebase"


@pytest.fixture
def settings(emulator_host: str, tmp_path: Path) -> Settings:
    return make_settings(emulator_host, tmp_path, google_cloud_project=PROJECT)


@pytest.fixture(scope="session")
def firestore_client(emulator_host: str) -> firestore.Client:
    return build_firestore_client(make_settings(emulator_host, Path("/nonexistent"), google_cloud_project=PROJECT))


@contextmanager
def serve_api(container: Container, *, limit_concurrency: int | None = None) -> Iterator[str]:
    """Recall's app under uvicorn on a free port, in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(container=container),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        limit_concurrency=limit_concurrency,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="recall-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def api_url(container: Container) -> Iterator[str]:
    with serve_api(container) as url:
        yield url
