"""The vector store contract, and the choice between its two backends.

Qdrant Edge (embedded, in-process) is the default; a Qdrant server is used when QDRANT_URL is set.
Every read and delete is scoped to one (user_id, character_name): there is no unscoped query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

from services.config import Settings
from services.models import Memory, MemoryHit


class VectorStore(Protocol):
    backend: str
    dimension: int

    def ensure_ready(self) -> None:
        """Create the collection and its payload indexes if missing.

        Raises ConfigurationError when the stored vector size differs from `dimension`.
        """

    def upsert(self, memories: Sequence[Memory], vectors: Sequence[Sequence[float]]) -> None:
        """Write the points under `Memory.id`; durable when this returns."""

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

    def count(self, user_id: str, character_name: str, kind: SearchKind = "all") -> int: ...

    def list_memories(self, user_id: str, character_name: str, limit: int = 100) -> list[Memory]:
        """Memories of this user and character, newest first."""

    def delete_for_messages(self, user_id: str, character_name: str, message_ids: Sequence[str]) -> None:
        """Delete every memory whose source_message_ids include any of `message_ids`."""

    def delete_batch(self, user_id: str, character_name: str, batch_id: str) -> None: ...

    def ping(self) -> None:
        """Raise VectorStoreError if the store cannot answer."""

    def close(self) -> None: ...


def build_vector_store(settings: Settings, dimension: int) -> VectorStore:
    """Qdrant server when QDRANT_URL is set, else Qdrant Edge under QDRANT_PATH."""
    if settings.qdrant_url:
        from services.qdrant_vector_store import QdrantVectorStore

        return QdrantVectorStore.from_settings(settings, dimension)
    from services.edge_vector_store import EdgeVectorStore

    return EdgeVectorStore(settings.qdrant_path, dimension)


# "memories": the extracted memories (every type but episodes); "episodes": the raw three-turn windows.
SearchKind = Literal["all", "memories", "episodes"]
EPISODE = "episode"

# Payload fields with keyword indexes: the tenant pair every query filters on, the provenance fields that
# retries and clean-ups delete by, and the type that separates episodes from extracted memories.
KEYWORD_FIELDS = ("user_id", "character_name", "batch_id", "source_message_ids", "type")


def check_vector(vector: Sequence[float], dimension: int) -> None:
    if len(vector) != dimension:
        raise ValueError(f"vector has size {len(vector)}, the store expects {dimension}")
    if not all(math.isfinite(x) for x in vector):
        raise ValueError("vector contains NaN or infinity")


def check_vectors(memories: Sequence[Memory], vectors: Sequence[Sequence[float]], dimension: int) -> None:
    if len(memories) != len(vectors):
        raise ValueError(f"{len(memories)} memories but {len(vectors)} vectors")
    for vector in vectors:
        check_vector(vector, dimension)


def memory_of(point_id: object, payload: dict[str, object] | None) -> Memory:
    # Qdrant Edge returns UUID point ids as uuid.UUID objects; Memory.id is the string form.
    return Memory.from_payload(str(point_id), payload or {})
