"""all-MiniLM-L6-v2 on ONNX Runtime: the same vectors as sentence-transformers, and episodes embedded late."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from services import local_model
from services.embedder import LocalEmbedder
from services.episodes import windows
from services.local_model import SEGMENT_TOKENS, plan_segments

TEXTS = [
    "",
    "hi",
    "Maya's brother Tom is a firefighter in Denver",
    "user: I adopted a golden retriever.\nmeher: What's his name?\nuser: Biscuit!",
    "ça va? 日本語 🎉 Привет",
    "a very long message " * 120,  # past the model's 256 tokens: truncated as sentence-transformers does
]
LINES = [
    "user: My brother Tom just got promoted at the fire station.",
    "meher: That's wonderful! Is he still in Denver?",
    "user: Yes, he loves it there, he goes climbing every weekend.",
    "meher: Do you ever go with him?",
    "user: Sometimes, but I'm scared of heights honestly.",
    "meher: That's fair. What about you, how is the hospital?",
    "user: Busy. I work nights in the pediatric ward.",
]


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    return SentenceTransformer(str(local_model.weights_dir()), device="cpu")


def cosines(a: list[list[float]], b: np.ndarray) -> np.ndarray:
    return np.asarray((np.asarray(a) * b).sum(axis=1))


def test_onnx_gives_sentence_transformers_vectors(embedder: LocalEmbedder, reference: SentenceTransformer) -> None:
    expected = reference.encode(TEXTS, normalize_embeddings=True, show_progress_bar=False)
    assert cosines(embedder.embed(TEXTS), expected).min() > 0.99999
    # The order of a batch changes nothing, padding included.
    reordered = embedder.embed(TEXTS[::-1])[::-1]
    assert np.allclose(reordered, embedder.embed(TEXTS), atol=1e-5)


def test_every_line_is_read_once_in_a_segment_that_fits() -> None:
    lengths = [13, 40, 7, 90, 12, 12, 300, 5, 30, 30]
    plan = plan_segments(lengths)
    # Consecutive runs covering every line once.
    assert [first for first, _ in plan] == [0, *(last for _, last in plan[:-1])]
    assert plan[-1][1] == len(lengths)
    for first, last in plan:
        # A segment holds what fits; only a line that does not fit alone makes a longer one, of itself.
        assert 2 + sum(lengths[first:last]) <= SEGMENT_TOKENS or last == first + 1
    # A segment ends only where the next line would not fit in it.
    assert all(2 + sum(lengths[first : last + 1]) > SEGMENT_TOKENS for first, last in plan[:-1])
    assert plan_segments([]) == []


def test_spans_are_embedded_in_order_and_near_their_text(embedder: LocalEmbedder) -> None:
    spans = list(windows(len(LINES)))
    whole = np.asarray(embedder.embed(["\n".join(LINES[s:e]) for s, e in spans]))
    late = embedder.embed_spans([(LINES, spans), (LINES[:2], [(0, 2)])])
    assert len(late) == len(spans) + 1
    assert np.allclose(np.linalg.norm(late, axis=1), 1.0, atol=1e-4)
    near = cosines(late[: len(spans)], whole)
    assert near.min() > 0.8  # the same text, read among its neighbours
    # Spans that do not overlap are each nearest their own text.
    apart = [(0, 2), (2, 4), (4, 7)]
    texts = np.asarray(embedder.embed(["\n".join(LINES[s:e]) for s, e in apart]))
    assert list((np.asarray(embedder.embed_spans([(LINES, apart)])) @ texts.T).argmax(axis=1)) == [0, 1, 2]
    # A passage's vectors do not depend on what else is embedded with it.
    assert np.allclose(embedder.embed_spans([(LINES[:2], [(0, 2)])])[0], late[-1], atol=1e-5)
    assert embedder.embed_spans([]) == []


def test_lines_longer_than_a_segment_are_read_alone_and_truncated(embedder: LocalEmbedder) -> None:
    lines = ["user: " + "word " * 200, "meher: ok", "user: " + "other " * 200]
    [vector] = embedder.embed_spans([(lines, [(0, 3)])])
    assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
    # Each long line is its own segment, so both count (the whole text, truncated, would lose the last).
    both = np.asarray(embedder.embed([lines[0], lines[2]])).sum(axis=0)
    assert cosines([vector], both[None, :] / np.linalg.norm(both)).min() > 0.99
