from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from scripts.sample_conversation import MAYA
from services.batch_processor import TriggerResult, _Chains
from services.container import Container
from services.embedder import LocalEmbedder
from services.message_store import Claim, MessageStore
from tests.conftest import make_settings
from tests.support.chat import T0, filler_turns, save_turns, wait_until

CHAR = "meher"


def synced_everything(container: Container, user_id: str, character: str = CHAR) -> bool:
    return container.store.count_unsynced(user_id, character) == 0


def settled_trigger(container: Container, user_id: str) -> TriggerResult:
    """A trigger's answer once no batch of this process runs for the conversation any more."""
    answers: list[TriggerResult] = []

    def settled() -> bool:
        answers.append(container.processor.trigger(user_id, CHAR))
        return not answers[-1].batch_running

    wait_until(settled, "the chain to let the conversation go")
    return answers[-1]


def test_24_messages_wait_and_the_25th_starts_a_batch(container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, MAYA[:24])
    waiting = container.processor.trigger(user_id, CHAR)
    assert (waiting.unsynced_count, waiting.threshold, waiting.batch_started, waiting.batch_id) == (24, 25, False, None)

    save_turns(container.store, user_id, CHAR, MAYA[24:25])
    started = container.processor.trigger(user_id, CHAR)
    assert started.unsynced_count == 25 and started.batch_started and started.batch_id
    wait_until(lambda: synced_everything(container, user_id), "the batch to sync 25 messages")
    assert container.store.count_synced(user_id, CHAR) == 25
    batch = container.store.get_batch(user_id, CHAR, started.batch_id)
    assert batch is not None and batch["status"] == "succeeded"
    assert batch["memory_count"] == container.vectors.count(user_id, CHAR, "memories") > 1
    # 25 turns in one sitting quoted three at a time, stride one.
    assert batch["episode_count"] == container.vectors.count(user_id, CHAR, "episodes") == 23
    # The record is written by the commit itself, so it carries the stages before it.
    assert set(batch["timings_ms"]) == {"extract", "embed", "upsert"}
    # Nothing left to do: once the chain has made its last claim, a further trigger starts nothing.
    again = settled_trigger(container, user_id)
    assert (again.unsynced_count, again.batch_started) == (0, False)


@pytest.fixture
def small_batches(emulator_host: str, tmp_path: Path, embedder: LocalEmbedder) -> Iterator[Container]:
    settings = make_settings(emulator_host, tmp_path, batch_max_messages=30, batch_workers=2)
    built = Container.build(settings, embedder=embedder)
    yield built
    built.close()


def test_concurrent_triggers_put_each_message_in_exactly_one_batch(small_batches: Container, user_id: str) -> None:
    container = small_batches
    saved = save_turns(container.store, user_id, CHAR, filler_turns(30, "trains") + filler_turns(30, "music"))
    barrier = threading.Barrier(4)
    results, errors = [], []

    def fire() -> None:
        barrier.wait()
        try:
            results.append(container.processor.trigger(user_id, CHAR))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    wait_until(lambda: synced_everything(container, user_id), "all 60 messages to sync")

    started = [r.batch_id for r in results if r.batch_started]
    assert started, "at least one trigger must start a batch"
    batches = [b.to_dict() for b in container.store.conversation(user_id, CHAR).collection("batches").stream()]
    succeeded = [b for b in batches if b["status"] == "succeeded"]
    per_message = Counter(mid for b in succeeded for mid in b["message_ids"])
    assert set(per_message) == {m.id for m in saved}
    assert set(per_message.values()) == {1}
    assert {b["status"] for b in batches} == {"succeeded"}
    memories = container.vectors.list_memories(user_id, CHAR, limit=500)
    owner = {mid: b["message_ids"] for b in succeeded for mid in b["message_ids"]}
    for memory in memories:
        assert set(memory.source_message_ids) <= set(owner[memory.source_message_ids[0]])


def test_a_trigger_while_a_batch_runs_leaves_the_new_messages_to_its_chain(container: Container, user_id: str) -> None:
    first = save_turns(container.store, user_id, CHAR, filler_turns(25, "trains"))
    reached, release = threading.Event(), threading.Event()

    def hold_the_first_batch(stage: str, _claim: Claim) -> None:
        if stage == "extracted" and not reached.is_set():
            reached.set()
            release.wait(60)

    container.processor.on_stage = hold_the_first_batch
    assert container.processor.trigger(user_id, CHAR).batch_started
    assert reached.wait(60)
    later = save_turns(container.store, user_id, CHAR, filler_turns(25, "music"), start=T0 + timedelta(hours=1))
    held = container.processor.trigger(user_id, CHAR)
    # No count and no claim beside the running batch: it takes the later messages next.
    assert (held.unsynced_count, held.batch_started, held.batch_running) == (None, False, True)
    release.set()
    wait_until(lambda: synced_everything(container, user_id), "the running chain to take the later messages")
    batches = sorted(
        (b.to_dict() for b in container.store.conversation(user_id, CHAR).collection("batches").stream()),
        key=lambda b: b["created_at"],
    )
    assert [(b["status"], set(b["message_ids"])) for b in batches] == [
        ("succeeded", {m.id for m in first}),
        ("succeeded", {m.id for m in later}),
    ]
    # Once the chain lets the conversation go, the next 25 messages start a batch of their own.
    settled_trigger(container, user_id)
    save_turns(container.store, user_id, CHAR, filler_turns(25, "films"), start=T0 + timedelta(hours=2))
    assert container.processor.trigger(user_id, CHAR).batch_started
    wait_until(lambda: synced_everything(container, user_id), "the third batch")


def test_chains_hold_a_conversation_and_never_miss_a_trigger_that_came_meanwhile() -> None:
    chains, key = _Chains(), ("u", "c")
    assert chains.enter(key, force=False)
    assert not chains.enter(key, force=False)  # held: word is left for the holder
    assert not chains.enter(key, force=True)
    assert chains.leave(key) is True  # the holder claims once more, forced, and keeps holding
    assert not chains.enter(key, force=False)
    assert chains.leave(key) is False
    assert chains.leave(key) is None  # nothing came since: let go
    assert chains.enter(key, force=False)  # free again
    assert chains.enter(("u", "other"), force=False)  # conversations apart
    chains.drop(key)
    assert chains.enter(key, force=False)


def test_a_retried_batch_replaces_the_points_of_an_attempt_that_never_committed(
    container: Container, store: MessageStore, user_id: str
) -> None:
    save_turns(store, user_id, CHAR, MAYA[:26])
    processor = container.processor
    # An attempt that upserted and then died before its commit: its points are orphans, its lease lapses.
    crashed = store.claim(user_id, CHAR, batch_id="crashed", max_messages=100, min_messages=25, lease_seconds=0.01)
    assert crashed is not None
    orphans, sittings = processor.memories_for(crashed)
    container.vectors.upsert(orphans, processor.embed(orphans, sittings))
    assert container.vectors.count(user_id, CHAR) == len(orphans)

    retry = processor.claim(user_id, CHAR)
    assert retry is not None and retry.message_ids == crashed.message_ids
    outcome = processor.run(retry)
    assert outcome.status == "succeeded"
    stored = container.vectors.list_memories(user_id, CHAR, limit=500)
    assert {m.batch_id for m in stored} == {retry.batch_id}
    assert sorted(m.text for m in stored) == sorted(m.text for m in orphans)
    assert store.count_synced(user_id, CHAR) == 26


def test_paraphrased_question_finds_the_right_memory(container: Container, user_id: str) -> None:
    save_turns(container.store, user_id, CHAR, MAYA)
    container.processor.trigger(user_id, CHAR)
    wait_until(lambda: synced_everything(container, user_id), "the batch to finish")
    cases = {
        "what does my brother do for a living?": "firefighter",
        "what's the name of my dog?": "Biscuit",
        "who am I going to see in Portugal?": "grandmother",
        "what am I anxious about this week?": "interview",
    }
    for question, expected in cases.items():
        top = container.integration.search(user_id, CHAR, question, limit=3)
        assert any(expected.lower() in hit.memory.text.lower() for hit in top), (question, [h.memory.text for h in top])


def test_tenants_never_mix(container: Container, user_id: str) -> None:
    maya_id, other_id = f"{user_id}-maya", f"{user_id}-other"
    save_turns(container.store, maya_id, CHAR, MAYA)
    save_turns(container.store, other_id, CHAR, filler_turns(26, "gardening and tomatoes"))
    for uid in (maya_id, other_id):
        container.processor.trigger(uid, CHAR)
    wait_until(
        lambda: synced_everything(container, maya_id) and synced_everything(container, other_id),
        "both tenants' batches",
    )
    maya_texts = {m.text for m in container.vectors.list_memories(maya_id, CHAR)}
    # The other user's query matches Maya's memory exactly, and still finds only their own.
    for text in maya_texts:
        hits = container.integration.search(other_id, CHAR, text, limit=10)
        assert all(h.memory.user_id == other_id for h in hits)
        assert not maya_texts & {h.memory.text for h in hits}
    assert container.vectors.count(maya_id, "another-character") == 0
    assert container.integration.search(maya_id, "another-character", "firefighter", limit=10) == []
