"""The VectorStore contract, run against Qdrant Edge, qdrant-client's local mode and a Qdrant server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from services.config import Settings
from services.edge_vector_store import EdgeVectorStore
from services.errors import ConfigurationError, VectorStoreError
from services.models import Memory
from services.qdrant_vector_store import QdrantVectorStore
from services.vector_store import SearchKind, VectorStore

DIM = 16
REPO_ROOT = Path(__file__).resolve().parents[2]
QDRANT_IMAGE = os.environ.get("QDRANT_TEST_IMAGE", "qdrant/qdrant:v1.19.0")
BASE_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KINDS: tuple[SearchKind, ...] = ("all", "memories", "episodes")


def unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_memories(
    user_id: str,
    character_name: str,
    batch_id: str,
    count: int,
    sources: Sequence[list[str]] | None = None,
) -> list[Memory]:
    return [
        Memory(
            id=Memory.point_id(batch_id, i),
            user_id=user_id,
            character_name=character_name,
            text=f"{user_id}/{character_name} memory {i} of {batch_id}",
            type="fact" if i % 2 else "preference",
            importance=round(0.1 * (i % 10), 2),
            source_message_ids=list(sources[i]) if sources else [f"{batch_id}-m{i}", f"{batch_id}-m{i + 1}"],
            occurred_at=BASE_TIME - timedelta(days=i) if i % 2 else None,
            created_at=BASE_TIME + timedelta(minutes=i),
            batch_id=batch_id,
            channel="whatsapp",
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def qdrant_server_url() -> Iterator[str]:
    import docker
    from docker.errors import DockerException

    try:
        engine = docker.from_env()  # raises at once when no daemon answers
        try:
            engine.ping()
        finally:
            engine.close()
    except DockerException as exc:
        pytest.skip(f"no container engine: Docker is not reachable ({exc})")
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(QDRANT_IMAGE) as container:
        yield f"http://{container.get_container_host_ip()}:{container.get_exposed_port(6333)}"


@pytest.fixture(params=["edge", "qdrant-local", "qdrant-server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    opened: VectorStore
    if request.param == "edge":
        opened = EdgeVectorStore(tmp_path / "qdrant", DIM)
    elif request.param == "qdrant-local":
        opened = QdrantVectorStore.local(":memory:", "memories", DIM)
    else:
        url = request.getfixturevalue("qdrant_server_url")
        collection = f"test_{uuid.uuid4().hex}"
        settings = Settings(_env_file=None, qdrant_url=url, qdrant_collection_name=collection)
        opened = QdrantVectorStore.from_settings(settings, DIM)
    opened.ensure_ready()
    yield opened
    opened.close()


def reopen(store: VectorStore, dimension: int) -> VectorStore:
    """A second store over the same data: same directory, or same client and collection."""
    if isinstance(store, EdgeVectorStore):
        store.close()  # one open shard per directory
        return EdgeVectorStore(store.path, dimension)
    assert isinstance(store, QdrantVectorStore)
    return QdrantVectorStore(store.client, store.collection, dimension)


def test_search_returns_nearest_with_payload_intact(store: VectorStore) -> None:
    rng = np.random.default_rng(1)
    memories = make_memories("alice", "Luna", "b1", 6)
    vectors = unit_vectors(rng, 6)
    store.upsert(memories, vectors.tolist())

    query = vectors[3] + 0.05 * unit_vectors(rng, 1)[0]
    hits = store.search("alice", "Luna", query.tolist(), limit=6)

    assert hits[0].memory == memories[3]
    assert hits[0].memory.source_message_ids == ["b1-m3", "b1-m4"]
    expected = vectors @ (query / np.linalg.norm(query))
    assert [h.memory.id for h in hits] == [memories[i].id for i in np.argsort(-expected)]
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-4)


def test_tenants_never_mix_even_on_an_exact_match(store: VectorStore) -> None:
    rng = np.random.default_rng(2)
    shared = unit_vectors(rng, 1)[0].tolist()
    tenants = [("alice", "Luna"), ("bob", "Luna"), ("alice", "Max")]
    for n, (user, character) in enumerate(tenants, start=1):
        store.upsert(make_memories(user, character, f"{user}-{character}", n), [shared] * n)

    for n, (user, character) in enumerate(tenants, start=1):
        hits = store.search(user, character, shared, limit=10)
        listed = store.list_memories(user, character)
        assert len(hits) == len(listed) == store.count(user, character) == n
        for memory in [h.memory for h in hits] + listed:
            assert (memory.user_id, memory.character_name) == (user, character)
    assert store.count("carol", "Luna") == 0
    assert store.search("carol", "Luna", shared, limit=10) == []


def test_min_score_drops_weaker_hits(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    memories = make_memories("alice", "Luna", "b1", 8)
    vectors = unit_vectors(rng, 8)
    store.upsert(memories, vectors.tolist())

    scores = np.sort(vectors @ vectors[0])[::-1]
    threshold = float(scores[1] + scores[2]) / 2
    hits = store.search("alice", "Luna", vectors[0].tolist(), limit=8, min_score=threshold)

    assert len(hits) == 2
    assert hits[0].memory.id == memories[0].id
    assert all(h.score >= threshold for h in hits)


def test_limit_keeps_the_best(store: VectorStore) -> None:
    rng = np.random.default_rng(4)
    memories = make_memories("alice", "Luna", "b1", 10)
    vectors = unit_vectors(rng, 10)
    store.upsert(memories, vectors.tolist())
    query = unit_vectors(rng, 1)[0]

    hits = store.search("alice", "Luna", query.tolist(), limit=3)

    best = np.argsort(-(vectors @ query))[:3]
    assert [h.memory.id for h in hits] == [memories[i].id for i in best]
    assert store.search("alice", "Luna", query.tolist(), limit=0) == []


def test_list_memories_is_newest_first(store: VectorStore) -> None:
    rng = np.random.default_rng(5)
    memories = make_memories("alice", "Luna", "b1", 7)
    order = rng.permutation(7)
    store.upsert([memories[i] for i in order], unit_vectors(rng, 7).tolist())

    listed = store.list_memories("alice", "Luna", limit=3)

    newest = sorted(memories, key=lambda m: m.created_at, reverse=True)[:3]
    assert listed == newest


def test_delete_for_messages_stays_within_the_tenant(store: VectorStore) -> None:
    rng = np.random.default_rng(6)
    mine = make_memories("alice", "Luna", "b1", 3, sources=[["m1"], ["m2", "m3"], ["m4"]])
    other_character = make_memories("alice", "Max", "b2", 1, sources=[["m3"]])
    other_user = make_memories("bob", "Luna", "b3", 1, sources=[["m3"]])
    for batch in (mine, other_character, other_user):
        store.upsert(batch, unit_vectors(rng, len(batch)).tolist())

    store.delete_for_messages("alice", "Luna", [])
    assert store.count("alice", "Luna") == 3
    store.delete_for_messages("alice", "Luna", ["m3", "never-seen"])

    assert {m.id for m in store.list_memories("alice", "Luna")} == {mine[0].id, mine[2].id}
    assert store.count("alice", "Max") == 1
    assert store.count("bob", "Luna") == 1


def test_delete_batch_stays_within_the_tenant(store: VectorStore) -> None:
    rng = np.random.default_rng(7)
    first = make_memories("alice", "Luna", "b1", 3)
    second = make_memories("alice", "Luna", "b2", 2)
    same_batch_elsewhere = make_memories("bob", "Luna", "b1", 2)
    # Point ids derive from the batch id, so bob's copy needs its own ids to coexist.
    same_batch_elsewhere = [m.model_copy(update={"id": str(uuid.uuid4())}) for m in same_batch_elsewhere]
    for batch in (first, second, same_batch_elsewhere):
        store.upsert(batch, unit_vectors(rng, len(batch)).tolist())

    store.delete_batch("alice", "Luna", "b1")

    assert {m.batch_id for m in store.list_memories("alice", "Luna")} == {"b2"}
    assert store.count("alice", "Luna") == 2
    assert store.count("bob", "Luna") == 2


def test_reupsert_with_the_same_ids_replaces(store: VectorStore) -> None:
    rng = np.random.default_rng(8)
    memories = make_memories("alice", "Luna", "b1", 4)
    store.upsert(memories, unit_vectors(rng, 4).tolist())

    retried = [m.model_copy(update={"text": m.text + " (retried)"}) for m in memories]
    vectors = unit_vectors(rng, 4)
    store.upsert(retried, vectors.tolist())

    assert store.count("alice", "Luna") == 4
    hits = store.search("alice", "Luna", vectors[1].tolist(), limit=1)
    assert hits[0].memory == retried[1]


def test_ensure_ready_twice_keeps_data(store: VectorStore) -> None:
    store.upsert(make_memories("alice", "Luna", "b1", 2), unit_vectors(np.random.default_rng(9), 2).tolist())
    store.ensure_ready()
    store.ping()
    assert store.count("alice", "Luna") == 2


def test_vector_size_mismatch_is_a_configuration_error(store: VectorStore) -> None:
    store.upsert(make_memories("alice", "Luna", "b1", 1), unit_vectors(np.random.default_rng(10), 1).tolist())
    other = reopen(store, DIM * 2)

    with pytest.raises(ConfigurationError) as caught:
        other.ensure_ready()
    assert str(DIM) in str(caught.value)
    assert str(DIM * 2) in str(caught.value)


def test_bad_vectors_are_refused(store: VectorStore) -> None:
    memories = make_memories("alice", "Luna", "b1", 2)
    with pytest.raises(ValueError, match="2 memories but 1 vectors"):
        store.upsert(memories, [[0.0] * DIM])
    with pytest.raises(ValueError, match="size"):
        store.upsert(memories[:1], [[1.0] * (DIM + 1)])
    with pytest.raises(ValueError, match="size"):
        store.search("alice", "Luna", [1.0] * (DIM - 1), limit=3)
    assert store.count("alice", "Luna") == 0


def test_concurrent_writers_and_readers(store: VectorStore) -> None:
    rng = np.random.default_rng(11)
    batches = [make_memories("alice", "Luna", f"t{n}", 5) for n in range(4)]
    vectors = [unit_vectors(rng, 5).tolist() for _ in batches]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            store.upsert(batches[n], vectors[n])
            store.search("alice", "Luna", vectors[n][0], limit=5)
            store.count("alice", "Luna")
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.count("alice", "Luna") == 20


def test_closed_store_raises_vector_store_error(store: VectorStore) -> None:
    store.close()
    store.close()
    with pytest.raises(VectorStoreError):
        store.ping()


def test_edge_data_survives_reopen(tmp_path: Path) -> None:
    memories = make_memories("alice", "Luna", "b1", 3)
    vectors = unit_vectors(np.random.default_rng(12), 3).tolist()
    first = EdgeVectorStore(tmp_path / "qdrant", DIM)
    first.ensure_ready()
    first.upsert(memories, vectors)
    first.close()

    second = EdgeVectorStore(tmp_path / "qdrant", DIM)
    second.ensure_ready()
    try:
        assert second.list_memories("alice", "Luna") == memories[::-1]
        assert second.search("alice", "Luna", vectors[2], limit=1)[0].memory == memories[2]
    finally:
        second.close()


def test_edge_upsert_is_durable_when_the_process_dies(tmp_path: Path) -> None:
    child = textwrap.dedent(
        f"""
        import os
        from datetime import datetime, UTC
        from pathlib import Path
        from services.edge_vector_store import EdgeVectorStore
        from services.models import Memory

        store = EdgeVectorStore(Path({str(tmp_path / "qdrant")!r}), {DIM})
        store.ensure_ready()
        memories = [
            Memory(id=Memory.point_id("b1", i), user_id="alice", character_name="Luna", text=f"m{{i}}",
                   type="fact", importance=0.5, source_message_ids=[f"m{{i}}"],
                   created_at=datetime(2025, 1, 1, tzinfo=UTC), batch_id="b1")
            for i in range(3)
        ]
        store.upsert(memories, [[1.0] + [0.0] * {DIM - 1}] * 3)
        os._exit(0)  # no close(), no flush beyond what upsert did
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", child], check=True, env=env, timeout=60)

    store = EdgeVectorStore(tmp_path / "qdrant", DIM)
    store.ensure_ready()
    try:
        assert store.count("alice", "Luna") == 3
        assert {m.id for m in store.list_memories("alice", "Luna")} == {Memory.point_id("b1", i) for i in range(3)}
    finally:
        store.close()


def test_edge_refuses_a_second_open_of_one_directory(tmp_path: Path) -> None:
    first = EdgeVectorStore(tmp_path / "qdrant", DIM)
    first.ensure_ready()
    try:
        with pytest.raises(ConfigurationError, match="already open"):
            EdgeVectorStore(tmp_path / "qdrant", DIM).ensure_ready()
    finally:
        first.close()


def test_edge_corrupt_directory_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    store = EdgeVectorStore(path, DIM)
    store.ensure_ready()
    store.upsert(make_memories("alice", "Luna", "b1", 1), [[1.0] + [0.0] * (DIM - 1)])
    store.close()
    (path / "edge_config.json").write_text("{not json")
    before = sorted(p.relative_to(path) for p in path.rglob("*"))

    with pytest.raises(ConfigurationError, match=str(path)):
        EdgeVectorStore(path, DIM).ensure_ready()
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    assert (path / "edge_config.json").read_text() == "{not json"


def test_episodes_and_extracted_memories_are_searched_and_counted_apart(store: VectorStore) -> None:
    rng = np.random.default_rng(12)
    memories = make_memories("alice", "Luna", "b1", 6)
    memories[3:] = [m.model_copy(update={"type": "episode"}) for m in memories[3:]]
    store.upsert(memories, unit_vectors(rng, 6).tolist())
    store.upsert(make_memories("bob", "Luna", "b2", 2), unit_vectors(rng, 2).tolist())
    query = unit_vectors(rng, 1)[0].tolist()

    found = {kind: {h.memory.id for h in store.search("alice", "Luna", query, 10, kind=kind)} for kind in KINDS}
    assert found == {
        "all": {m.id for m in memories},
        "memories": {m.id for m in memories[:3]},
        "episodes": {m.id for m in memories[3:]},
    }
    assert {kind: store.count("alice", "Luna", kind) for kind in KINDS} == {"all": 6, "memories": 3, "episodes": 3}
