"""The embedded vector store: one Qdrant Edge shard in a data directory, inside this process."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import qdrant_edge as qe

from services.errors import ConfigurationError, VectorStoreError
from services.models import Memory, MemoryHit
from services.vector_store import EPISODE, KEYWORD_FIELDS, SearchKind, check_vector, check_vectors, memory_of

# created_ts gets a range index because list_memories orders by it, and order_by needs one.
_TENANT_FIELD = "user_id"
_ORDER_FIELD = "created_ts"


class EdgeVectorStore:
    """A `VectorStore` on a Qdrant Edge shard under `path` (cosine distance, the default vector).

    Only one shard may be open per directory, across processes and within one.
    """

    backend = "qdrant-edge"

    def __init__(self, path: Path, dimension: int) -> None:
        self.path = Path(path)
        self.dimension = dimension
        self._shard: qe.EdgeShard | None = None
        # Guards open, close and updates. Queries skip it: the engine serves reads while it writes.
        self._lock = threading.RLock()

    def ensure_ready(self) -> None:
        """Open the shard (creating it if the directory holds none) and create missing payload indexes."""
        with self._lock:
            if self._shard is None:
                self._shard = self._load() if _holds_shard(self.path) else self._create()
            self._ensure_indexes(self._shard)

    def upsert(self, memories: Sequence[Memory], vectors: Sequence[Sequence[float]]) -> None:
        """Write the points under `Memory.id` and flush, so they are on disk when this returns."""
        check_vectors(memories, vectors, self.dimension)
        if not memories:
            return
        points = [qe.Point(m.id, [float(x) for x in v], m.payload()) for m, v in zip(memories, vectors, strict=True)]
        self._update(qe.UpdateOperation.upsert_points(points), f"upsert {len(points)} memories")

    def search(
        self,
        user_id: str,
        character_name: str,
        vector: Sequence[float],
        limit: int,
        min_score: float | None = None,
        kind: SearchKind = "all",
    ) -> list[MemoryHit]:
        """Nearest points of this user and character, best first: of every type, or only `kind`."""
        check_vector(vector, self.dimension)
        if limit <= 0:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest([float(x) for x in vector]),
            filter=_tenant_filter(user_id, character_name, kind=kind),
            with_payload=True,
            score_threshold=min_score,
        )
        with self._engine_errors("search"):
            points = self._require().query(request)
        return [MemoryHit(memory=memory_of(p.id, p.payload), score=p.score) for p in points]

    def count(self, user_id: str, character_name: str, kind: SearchKind = "all") -> int:
        request = qe.CountRequest(exact=True, filter=_tenant_filter(user_id, character_name, kind=kind))
        with self._engine_errors("count"):
            return self._require().count(request)

    def list_memories(self, user_id: str, character_name: str, limit: int = 100) -> list[Memory]:
        """Memories of this user and character, newest first."""
        if limit <= 0:
            return []
        request = qe.ScrollRequest(
            limit=limit,
            filter=_tenant_filter(user_id, character_name),
            with_payload=True,
            order_by=qe.OrderBy(_ORDER_FIELD, direction=qe.Direction.Desc),
        )
        with self._engine_errors("list memories"):
            records, _ = self._require().scroll(request)
        return [memory_of(r.id, r.payload) for r in records]

    def delete_for_messages(self, user_id: str, character_name: str, message_ids: Sequence[str]) -> None:
        """Delete every memory of this tenant whose source_message_ids include any of `message_ids`."""
        if not message_ids:
            return
        condition = qe.FieldCondition("source_message_ids", match=qe.MatchAny(list(message_ids)))
        selector = _tenant_filter(user_id, character_name, condition)
        self._update(qe.UpdateOperation.delete_points_by_filter(selector), "delete memories of messages")

    def delete_batch(self, user_id: str, character_name: str, batch_id: str) -> None:
        condition = qe.FieldCondition("batch_id", match=qe.MatchValue(batch_id))
        selector = _tenant_filter(user_id, character_name, condition)
        self._update(qe.UpdateOperation.delete_points_by_filter(selector), f"delete batch {batch_id}")

    def ping(self) -> None:
        """Raise VectorStoreError if the shard is not open or cannot answer."""
        with self._engine_errors("ping"):
            self._require().info()

    def close(self) -> None:
        """Flush and close the shard, releasing its directory lock. Safe to call twice."""
        with self._lock:
            shard, self._shard = self._shard, None
            if shard is None:
                return
            with self._engine_errors("close"):
                try:
                    shard.flush()
                finally:
                    shard.close()

    def _require(self) -> qe.EdgeShard:
        shard = self._shard
        if shard is None:
            raise VectorStoreError(f"Qdrant Edge shard at {self.path} is not open: call ensure_ready() first")
        return shard

    def _update(self, operation: qe.UpdateOperation, action: str) -> None:
        with self._lock, self._engine_errors(action):
            shard = self._require()
            shard.update(operation)
            # The WAL replays unflushed updates after a crash, but flush is what the contract promises.
            shard.flush()

    @contextmanager
    def _engine_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except VectorStoreError:
            raise
        # qdrant_edge raises bare Exception (ValueError for bad ids), so nothing narrower catches its errors.
        except Exception as exc:
            raise VectorStoreError(f"Qdrant Edge at {self.path}: {action} failed: {exc}") from exc

    def _config(self) -> qe.EdgeConfig:
        return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=self.dimension, distance=qe.Distance.Cosine))

    def _create(self) -> qe.EdgeShard:
        try:
            return qe.EdgeShard.create(str(self.path), self._config())
        except Exception as exc:
            raise self._open_error(exc, "create") from exc

    def _load(self) -> qe.EdgeShard:
        # Passing the config makes the engine check the stored vector size and distance against ours.
        try:
            return qe.EdgeShard.load(str(self.path), self._config())
        except Exception as exc:
            raise self._open_error(exc, "load") from exc

    def _open_error(self, exc: Exception, action: str) -> ConfigurationError:
        text = str(exc)
        if "WouldBlock" in text:
            return ConfigurationError(
                f"Qdrant Edge shard at {self.path} is already open in another process (or another store "
                "in this one); only one may hold a shard directory. Stop the other process, point "
                f"QDRANT_PATH at a different directory, or set QDRANT_URL to share a Qdrant server. ({text})"
            )
        if "incompatible" in text.lower():
            stored = _stored_size(self.path)
            return ConfigurationError(
                f"Qdrant Edge shard at {self.path} stores vectors of size {stored or 'unknown'}, "
                f"but the embedder produces size {self.dimension}. Point QDRANT_PATH at a new directory, "
                f"or re-embed the stored memories with the current embedder. ({text})"
            )
        return ConfigurationError(
            f"Could not {action} the Qdrant Edge shard at {self.path}: {text}. Nothing was deleted; "
            "restore the directory from a backup, or move it aside and point QDRANT_PATH at an empty one."
        )

    def _ensure_indexes(self, shard: qe.EdgeShard) -> None:
        with self._engine_errors("create payload indexes"):
            existing = shard.info().payload_schema
            for field in KEYWORD_FIELDS:
                if not _has_keyword_index(existing.get(field), tenant=field == _TENANT_FIELD):
                    params = qe.KeywordIndexParams(is_tenant=True if field == _TENANT_FIELD else None)
                    shard.update(qe.UpdateOperation.create_field_index(field, params))
            if _ORDER_FIELD not in existing:
                shard.update(qe.UpdateOperation.create_field_index(_ORDER_FIELD, qe.FloatIndexParams()))
            shard.flush()


def _holds_shard(path: Path) -> bool:
    # A shard without edge_config.json still loads (config derived from segments), so check both.
    segments = path / "segments"
    return (path / "edge_config.json").exists() or (segments.is_dir() and any(segments.iterdir()))


def _stored_size(path: Path) -> int | None:
    """The vector size recorded in the shard's config file, for error messages only."""
    try:
        config = json.loads((path / "edge_config.json").read_text())
        return int(config["vectors"][""]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _has_keyword_index(info: qe.PayloadIndexInfo | None, tenant: bool) -> bool:
    if info is None or info.data_type != qe.PayloadSchemaType.Keyword:
        return False
    return not tenant or getattr(info.params, "is_tenant", None) is True


def _tenant_filter(user_id: str, character_name: str, *extra: qe.FieldCondition, kind: SearchKind = "all") -> qe.Filter:
    must: list[qe.ConditionType] = [
        qe.FieldCondition("user_id", match=qe.MatchValue(user_id)),
        qe.FieldCondition("character_name", match=qe.MatchValue(character_name)),
        *extra,
    ]
    episode = qe.FieldCondition("type", match=qe.MatchValue(EPISODE))
    if kind == "episodes":
        return qe.Filter(must=[*must, episode])
    return qe.Filter(must=must, must_not=[episode] if kind == "memories" else None)
