"""Kill a batch processor (SIGKILL, in its own process) at every stage; the end state equals a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from scripts.sample_conversation import MAYA
from services.container import Container
from services.embedder import LocalEmbedder
from tests.conftest import PROJECT, make_settings
from tests.support.chat import save_turns, wait_until

CHAR = "meher"
# The killed worker's lease: short, so the take-over comes quickly. The survivor keeps the default lease,
# or a slow machine would see it superseded by its own next trigger.
WORKER_LEASE_S = 1.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clean_run_texts(emulator_host: str, tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder) -> list[str]:
    """The memories a batch that nobody kills makes of the same conversation."""
    container = Container.build(make_settings(emulator_host, tmp_path_factory.mktemp("clean")), embedder=embedder)
    try:
        save_turns(container.store, "clean-run-user", CHAR, MAYA)
        outcomes = container.processor.run_chain(container.processor.claim("clean-run-user", CHAR))
        assert [o.status for o in outcomes] == ["succeeded"]
        return sorted(m.text for m in container.vectors.list_memories("clean-run-user", CHAR, limit=500))
    finally:
        container.close()


@pytest.mark.parametrize("stage", ["claimed", "extracted", "upserted", "committing"])
def test_a_batch_killed_at_any_stage_ends_as_a_clean_run(
    stage: str, emulator_host: str, tmp_path: Path, embedder: LocalEmbedder, user_id: str, clean_run_texts: list[str]
) -> None:
    settings = make_settings(emulator_host, tmp_path)
    qdrant_path = str(settings.qdrant_path)
    setup = Container.build(settings, embedder=embedder)  # creates the shard, then lets the worker have it
    saved = save_turns(setup.store, user_id, CHAR, MAYA)
    setup.close()

    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.crash_worker",
            emulator_host,
            PROJECT,
            qdrant_path,
            user_id,
            CHAR,
            stage,
            str(WORKER_LEASE_S),
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        timeout=120,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr.decode()[-2000:]

    container = Container.build(settings, embedder=embedder)
    try:
        # After the lease lapses, the next trigger takes over whatever the dead batch left.
        def settled() -> bool:
            container.processor.trigger(user_id, CHAR)
            return container.store.count_unsynced(user_id, CHAR) == 0

        # A kill inside the commit transaction (after its reads, before its commit) leaves that transaction's
        # document locks held until Firestore expires it (about 60 s on the emulator): claims contend until
        # then, and the take-over comes after it. Measured: ~65 s in those runs, ~10 s otherwise.
        wait_until(settled, "the retry after the lease lapsed", 300)
        container.executor.shutdown(wait=True)
        assert_clean_state(container, user_id, {m.id for m in saved}, clean_run_texts)
    finally:
        container.close()


def assert_clean_state(container: Container, user_id: str, message_ids: set[str], expected_texts: list[str]) -> None:
    assert container.store.count_synced(user_id, CHAR) == len(message_ids)
    batches = [
        {"batch_id": d.id, **(d.to_dict() or {})}
        for d in container.store.conversation(user_id, CHAR).collection("batches").stream()
    ]
    succeeded = [b for b in batches if b["status"] == "succeeded"]
    per_message = Counter(mid for b in succeeded for mid in b["message_ids"])
    assert set(per_message) == message_ids and set(per_message.values()) == {1}, "each message in one batch"
    memories = container.vectors.list_memories(user_id, CHAR, limit=500)
    assert sorted(m.text for m in memories) == expected_texts
    assert {m.batch_id for m in memories} <= {b["batch_id"] for b in succeeded}, "no orphan points"
