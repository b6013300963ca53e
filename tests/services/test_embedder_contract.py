"""What every embedder promises, run against both: all-MiniLM-L6-v2 and OpenAI's (over the wire format)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from openai import OpenAI

from services.embedder import Embedder, LocalEmbedder, OpenAIEmbedder
from tests.support.openai_wire import OpenAIWireServer

TEXTS = ["Maya's brother Tom is a firefighter in Denver", "Biscuit is a golden retriever", "ça va? 日本語 🎉"]


@pytest.fixture(params=["local", "openai"])
def any_embedder(request: pytest.FixtureRequest, embedder: LocalEmbedder) -> Iterator[Embedder]:
    if request.param == "local":
        yield embedder
        return
    with OpenAIWireServer() as server:
        client = OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)
        yield OpenAIEmbedder(client, "text-embedding-3-small", 1536)


def test_one_unit_vector_of_the_declared_size_per_text_in_order(any_embedder: Embedder) -> None:
    vectors = any_embedder.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for text, vector in zip(TEXTS, vectors, strict=True):
        assert len(vector) == any_embedder.dimension
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-4)
        assert vector == pytest.approx(any_embedder.embed_query(text), abs=1e-5)


def test_nothing_in_nothing_out(any_embedder: Embedder) -> None:
    assert any_embedder.embed([]) == []


def test_each_span_gets_a_unit_vector_nearest_its_own_text(any_embedder: Embedder) -> None:
    lines = ["user: my brother is a firefighter", "meher: in Denver?", "user: yes", "meher: brave!", "user: he is"]
    spans = [(0, 3), (1, 4), (2, 5)]
    vectors = np.asarray(any_embedder.embed_spans([(lines, spans), (lines[:1], [(0, 1)])]))
    texts = ["\n".join(lines[s:e]) for s, e in spans] + [lines[0]]
    assert vectors.shape == (len(texts), any_embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert list((vectors @ np.asarray(any_embedder.embed(texts)).T).argmax(axis=1)) == list(range(len(texts)))
    assert any_embedder.embed_spans([]) == []
