"""Recall's exception tree. Adapters wrap SDK errors in these (`raise ... from exc`); `api/` maps them to HTTP.

RecallError
├── ConfigurationError      start-up cannot go on: a wrong setting, a vector size that does not match
├── InvalidInputError       the caller's input is wrong (HTTP 4xx)
│   └── ConflictError       it clashes with what is stored (HTTP 409)
├── LeaseLostError          a batch's claim was taken over; its results are discarded
└── DependencyError         a dependency failed; the work is left to be retried
    ├── MessageStoreError   Firestore
    ├── VectorStoreError    Qdrant
    ├── EmbeddingError      the embedding model or API
    └── ExtractionError     the LLM failed or answered something that is not valid memory JSON
"""

from __future__ import annotations


class RecallError(Exception):
    """Base of every error Recall raises on purpose."""


class ConfigurationError(RecallError):
    """The configuration cannot work; the message says what to change."""


class InvalidInputError(RecallError):
    """The caller sent something Recall refuses; nothing was written."""


class ConflictError(InvalidInputError):
    """The input clashes with stored data, e.g. a message id that exists already."""


class LeaseLostError(RecallError):
    """Another batch claimed these messages after this one's lease ran out; this one must not commit."""


class DependencyError(RecallError):
    """A dependency failed. Messages stay unsynced and a later batch retries them."""

    component = "dependency"


class MessageStoreError(DependencyError):
    component = "firestore"


class VectorStoreError(DependencyError):
    component = "qdrant"


class EmbeddingError(DependencyError):
    component = "embedder"


class ExtractionError(DependencyError):
    component = "llm"
