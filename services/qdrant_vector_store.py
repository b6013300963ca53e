"""The server vector store: a Qdrant server or cluster reached through qdrant-client."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import grpc
import httpx
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException

from services.config import Settings
from services.errors import ConfigurationError, VectorStoreError
from services.models import Memory, MemoryHit
from services.vector_store import EPISODE, KEYWORD_FIELDS, SearchKind, check_vector, check_vectors, memory_of

# created_ts gets a range index because list_memories orders by it, and order_by needs one.
_TENANT_FIELD = "user_id"
_ORDER_FIELD = "created_ts"

# Local mode (":memory:" or a path) raises ValueError/RuntimeError where a server answers 4xx/5xx.
_CLIENT_ERRORS = (ApiException, QdrantException, httpx.HTTPError, grpc.RpcError, OSError, ValueError, RuntimeError)


class QdrantVectorStore:
    """A `VectorStore` on one collection of a Qdrant server (cosine distance, the default vector)."""

    backend = "qdrant"

    def __init__(self, client: QdrantClient, collection: str, dimension: int, *, serialize: bool = False) -> None:
        self.client = client
        self.collection = collection
        self.dimension = dimension
        self._closed = False
        # Local mode keeps its points in numpy arrays that concurrent writes corrupt; a server needs no lock.
        self._lock: AbstractContextManager[object] = threading.RLock() if serialize else nullcontext()

    @classmethod
    def from_settings(cls, settings: Settings, dimension: int) -> QdrantVectorStore:
        """The server at QDRANT_URL. Nothing here blocks on the network; ensure_ready() is the first call."""
        client = QdrantClient(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
            timeout=int(settings.qdrant_connection_timeout),
        )
        return cls(client, settings.qdrant_collection_name, dimension)

    @classmethod
    def local(cls, location: str, collection: str, dimension: int) -> QdrantVectorStore:
        """qdrant-client's local mode, for tests: ":memory:" or a directory path."""
        if location == ":memory:":
            return cls(QdrantClient(location=location), collection, dimension, serialize=True)
        # The API calls the store from worker threads; local mode's sqlite refuses that by default.
        client = QdrantClient(path=location, force_disable_check_same_thread=True)
        return cls(client, collection, dimension, serialize=True)

    def ensure_ready(self) -> None:
        """Create the collection and missing payload indexes; check the vector size of an existing one."""
        with self._client_errors("prepare the collection"):
            if not self.client.collection_exists(self.collection):
                self._create_collection()
            info = self.client.get_collection(self.collection)
            self._check_vectors_config(info.config.params.vectors)
            self._ensure_indexes(info.payload_schema)

    def upsert(self, memories: Sequence[Memory], vectors: Sequence[Sequence[float]]) -> None:
        """Write the points under `Memory.id`; `wait=True` makes them durable when this returns."""
        check_vectors(memories, vectors, self.dimension)
        if not memories:
            return
        points = [
            qm.PointStruct(id=m.id, vector=[float(x) for x in v], payload=m.payload())
            for m, v in zip(memories, vectors, strict=True)
        ]
        with self._client_errors(f"upsert {len(points)} memories"):
            self.client.upsert(self.collection, points=points, wait=True)

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
        with self._client_errors("search"):
            response = self.client.query_points(
                self.collection,
                query=[float(x) for x in vector],
                query_filter=_tenant_filter(user_id, character_name, kind=kind),
                limit=limit,
                with_payload=True,
                score_threshold=min_score,
            )
        return [MemoryHit(memory=memory_of(p.id, p.payload), score=p.score) for p in response.points]

    def count(self, user_id: str, character_name: str, kind: SearchKind = "all") -> int:
        with self._client_errors("count"):
            result = self.client.count(
                self.collection, count_filter=_tenant_filter(user_id, character_name, kind=kind), exact=True
            )
        return result.count

    def list_memories(self, user_id: str, character_name: str, limit: int = 100) -> list[Memory]:
        """Memories of this user and character, newest first."""
        if limit <= 0:
            return []
        with self._client_errors("list memories"):
            records, _ = self.client.scroll(
                self.collection,
                scroll_filter=_tenant_filter(user_id, character_name),
                limit=limit,
                order_by=qm.OrderBy(key=_ORDER_FIELD, direction=qm.Direction.DESC),
                with_payload=True,
            )
        return [memory_of(r.id, r.payload) for r in records]

    def delete_for_messages(self, user_id: str, character_name: str, message_ids: Sequence[str]) -> None:
        """Delete every memory of this tenant whose source_message_ids include any of `message_ids`."""
        if not message_ids:
            return
        condition = qm.FieldCondition(key="source_message_ids", match=qm.MatchAny(any=list(message_ids)))
        self._delete(_tenant_filter(user_id, character_name, condition), "delete memories of messages")

    def delete_batch(self, user_id: str, character_name: str, batch_id: str) -> None:
        condition = qm.FieldCondition(key="batch_id", match=qm.MatchValue(value=batch_id))
        self._delete(_tenant_filter(user_id, character_name, condition), f"delete batch {batch_id}")

    def ping(self) -> None:
        """Raise VectorStoreError if the server or the collection does not answer."""
        with self._client_errors("ping"):
            self.client.count(self.collection, exact=False)

    def close(self) -> None:
        """Close the client's connections. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._client_errors("close"):
            self.client.close()

    def _delete(self, selector: qm.Filter, action: str) -> None:
        with self._client_errors(action):
            self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=selector), wait=True)

    @contextmanager
    def _client_errors(self, action: str) -> Iterator[None]:
        try:
            with self._lock:
                yield
        except _CLIENT_ERRORS as exc:
            raise VectorStoreError(f"Qdrant collection {self.collection!r}: {action} failed: {exc}") from exc

    def _create_collection(self) -> None:
        params = qm.VectorParams(size=self.dimension, distance=qm.Distance.COSINE)
        try:
            self.client.create_collection(self.collection, vectors_config=params)
        except _CLIENT_ERRORS:
            # Another process may have created it first (409); only a still-missing collection is an error.
            if not self.client.collection_exists(self.collection):
                raise

    def _check_vectors_config(self, vectors: object) -> None:
        if not isinstance(vectors, qm.VectorParams):
            raise ConfigurationError(
                f"Qdrant collection {self.collection!r} uses named vectors ({vectors!r}); Recall needs one "
                "unnamed vector. Set QDRANT_COLLECTION_NAME to a new collection."
            )
        if vectors.size != self.dimension or vectors.distance != qm.Distance.COSINE:
            raise ConfigurationError(
                f"Qdrant collection {self.collection!r} stores vectors of size {vectors.size} "
                f"({vectors.distance.value}), but the embedder produces size {self.dimension} (Cosine). "
                "Set QDRANT_COLLECTION_NAME to a new collection, or re-embed the stored memories."
            )

    def _ensure_indexes(self, existing: dict[str, qm.PayloadIndexInfo]) -> None:
        wanted: dict[str, qm.PayloadSchemaType | qm.KeywordIndexParams] = {
            field: qm.PayloadSchemaType.KEYWORD for field in KEYWORD_FIELDS
        }
        wanted[_TENANT_FIELD] = qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True)
        wanted[_ORDER_FIELD] = qm.PayloadSchemaType.FLOAT
        with warnings.catch_warnings():
            # Local mode warns that payload indexes have no effect there; that is expected in tests.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
            for field, schema in wanted.items():
                if field not in existing:
                    self.client.create_payload_index(self.collection, field, field_schema=schema, wait=True)


def _tenant_filter(user_id: str, character_name: str, *extra: qm.FieldCondition, kind: SearchKind = "all") -> qm.Filter:
    must: list[qm.Condition] = [
        qm.FieldCondition(key="user_id", match=qm.MatchValue(value=user_id)),
        qm.FieldCondition(key="character_name", match=qm.MatchValue(value=character_name)),
        *extra,
    ]
    episode = qm.FieldCondition(key="type", match=qm.MatchValue(value=EPISODE))
    if kind == "episodes":
        return qm.Filter(must=[*must, episode])
    return qm.Filter(must=must, must_not=[episode] if kind == "memories" else None)
