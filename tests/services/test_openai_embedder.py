"""OpenAIEmbedder against a real HTTP server speaking the OpenAI wire format."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import openai
import pytest
from openai import OpenAI

from services.config import Settings
from services.embedder import OpenAIEmbedder
from services.errors import EmbeddingError
from tests.support.openai_wire import (
    Delay,
    OpenAIWireServer,
    RecordedRequest,
    Reply,
    embeddings_body,
    error,
    vector_for,
)

DIMS = 8
TEXTS = ["Maya's brother Tom is a firefighter in Denver", "Maya plans to visit Tom", "Maya likes green tea"]
FAST = {"retry-after-ms": "10"}  # the SDK honours it, so retry tests do not wait for its backoff


@pytest.fixture
def server() -> Iterator[OpenAIWireServer]:
    with OpenAIWireServer() as wire:
        yield wire


@pytest.fixture
def make_embedder(server: OpenAIWireServer) -> Iterator[Callable[..., OpenAIEmbedder]]:
    clients: list[OpenAI] = []

    def make(max_retries: int = 0, timeout: float = 0.5, dimension: int = DIMS) -> OpenAIEmbedder:
        client = OpenAI(api_key="test-key", base_url=server.base_url, max_retries=max_retries, timeout=timeout)
        clients.append(client)
        return OpenAIEmbedder(client, "text-embedding-3-small", dimension)

    yield make
    for client in clients:
        client.close()


def altered(change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Callable[[RecordedRequest], Reply]:
    """A handler answering the default embeddings with `change` applied to their data items."""

    def handle(request: RecordedRequest) -> Reply:
        body = embeddings_body(request)
        return Reply(body={**body, "data": change(body["data"])})

    return handle


def assert_vectors_of(vectors: list[list[float]], texts: list[str]) -> None:
    assert len(vectors) == len(texts)
    for vector, text in zip(vectors, texts, strict=True):
        assert vector == pytest.approx(vector_for(text, DIMS))


def test_request_shape(server, make_embedder) -> None:
    make_embedder().embed(TEXTS)

    [request] = server.embedding_requests
    assert request.path == "/v1/embeddings"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body == {
        "model": "text-embedding-3-small",
        "input": TEXTS,
        "dimensions": DIMS,
        "encoding_format": "float",
    }


def test_one_unit_vector_per_text_in_order(server, make_embedder) -> None:
    vectors = make_embedder().embed(TEXTS)

    assert_vectors_of(vectors, TEXTS)
    assert all(math.isclose(math.hypot(*v), 1.0) for v in vectors)


def test_vectors_follow_index_not_position(server, make_embedder) -> None:
    server.script_embeddings(altered(lambda data: [data[2], data[0], data[1]]))

    assert_vectors_of(make_embedder().embed(TEXTS), TEXTS)


def test_vectors_are_scaled_to_unit_length(server, make_embedder) -> None:
    # A compatible server (Ollama, vLLM) may answer unnormalized vectors; the Embedder contract is unit length.
    server.script_embeddings(altered(lambda data: [{**d, "embedding": [3 * x for x in d["embedding"]]} for d in data]))

    assert_vectors_of(make_embedder().embed(TEXTS), TEXTS)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda data: data[:-1], id="one-missing"),
        pytest.param(lambda data: [*data, {**data[0], "index": 3}], id="one-extra"),
        pytest.param(lambda data: [data[0], data[0], data[2]], id="duplicate-index"),
        pytest.param(lambda data: [], id="empty"),
        pytest.param(lambda data: [{**d, "embedding": d["embedding"][:-1]} for d in data], id="too-short"),
        pytest.param(lambda data: [{**d, "embedding": [*d["embedding"], 0.1]} for d in data], id="too-long"),
        pytest.param(lambda data: [{**d, "embedding": [0.0] * DIMS} for d in data], id="zero-vector"),
        pytest.param(lambda data: [{**d, "embedding": None} for d in data], id="null-vector"),
        pytest.param(lambda data: [{**d, "embedding": ["a"] * DIMS} for d in data], id="not-numbers"),
        pytest.param(lambda data: [{k: v for k, v in d.items() if k != "index"} for d in data], id="no-index"),
    ],
)
def test_wrong_count_or_size_is_an_embedding_error(server, make_embedder, change) -> None:
    server.script_embeddings(altered(change))
    with pytest.raises(EmbeddingError):
        make_embedder().embed(TEXTS)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(body={"object": "list"}), id="no-data"),
        pytest.param(Reply(raw=b"<html>502 Bad Gateway</html>"), id="html-body"),
    ],
)
def test_malformed_response_is_an_embedding_error(server, make_embedder, reply) -> None:
    server.script_embeddings(reply)
    with pytest.raises(EmbeddingError):
        make_embedder().embed(TEXTS)


def test_server_ignoring_dimensions_is_an_embedding_error(server, make_embedder) -> None:
    # e.g. a model without shortened embeddings answering its native size
    def native_size(request: RecordedRequest) -> Reply:
        return Reply(body=embeddings_body(replace(request, body={**request.body, "dimensions": DIMS * 2})))

    server.script_embeddings(native_size)
    embedder = make_embedder(dimension=DIMS)
    with pytest.raises(EmbeddingError, match=f"{DIMS * 2}-dimensional"):
        embedder.embed(TEXTS)


def test_rate_limit_then_success_is_retried(server, make_embedder) -> None:
    server.script_embeddings(error(429, "Rate limit reached", headers=FAST))

    assert len(make_embedder(max_retries=1).embed(TEXTS)) == len(TEXTS)
    assert len(server.embedding_requests) == 2


def test_persistent_server_error_is_an_embedding_error(server, make_embedder) -> None:
    server.script_embeddings(*[error(503, "overloaded", headers=FAST)] * 3)
    with pytest.raises(EmbeddingError, match="overloaded") as caught:
        make_embedder(max_retries=2).embed(TEXTS)
    assert isinstance(caught.value.__cause__, openai.InternalServerError)
    assert len(server.embedding_requests) == 3


def test_timeout_is_an_embedding_error(server, make_embedder) -> None:
    server.script_embeddings(Delay(2.0), Delay(2.0))
    with pytest.raises(EmbeddingError, match="timed out") as caught:
        make_embedder(max_retries=1, timeout=0.3).embed(TEXTS)
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert len(server.embedding_requests) == 2


def test_no_texts_no_request(server, make_embedder) -> None:
    assert make_embedder().embed([]) == []
    assert server.requests == []


def test_embed_query(server, make_embedder) -> None:
    assert make_embedder().embed_query("green tea") == pytest.approx(vector_for("green tea", DIMS))
    assert server.embedding_requests[0].body["input"] == ["green tea"]


def test_from_settings(server) -> None:
    settings = Settings(
        _env_file=None,
        openai_api_key="settings-key",
        openai_base_url=server.base_url,
        openai_embedding_model="emb-test",
        openai_embedding_dimensions=16,
        openai_max_retries=0,
    )
    embedder = OpenAIEmbedder.from_settings(settings)

    assert (embedder.name, embedder.dimension) == ("openai:emb-test", 16)
    assert len(embedder.embed(["hello"])[0]) == 16
    [request] = server.embedding_requests
    assert (request.body["model"], request.body["dimensions"]) == ("emb-test", 16)
    assert request.headers["authorization"] == "Bearer settings-key"


def test_wire_server_speaks_base64_as_the_sdk_requests_by_default(server) -> None:
    # The SDK asks for base64 unless told otherwise; the server must answer it as the API does.
    with OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0) as client:
        response = client.embeddings.create(model="text-embedding-3-small", input=["green tea"], dimensions=DIMS)
    assert server.embedding_requests[0].body["encoding_format"] == "base64"
    assert response.data[0].embedding == pytest.approx(vector_for("green tea", DIMS), abs=1e-6)
