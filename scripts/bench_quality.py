"""Memory quality on LoCoMo: Recall's context service against raw 3-turn windows, in one 400-token context.

    .venv/bin/python scripts/bench_quality.py            # 4 conversations, 584 questions (5-15 minutes)
    .venv/bin/python scripts/bench_quality.py --quick    # 2 conversations, 40 questions each (1-2 minutes)
    .venv/bin/python scripts/bench_quality.py --all      # all 10 conversations, 1,540 questions (categories 1-4)

Each conversation goes through the real pipeline (Firestore emulator, Qdrant Edge in a temp dir, the
offline extractor, all-MiniLM-L6-v2), once per speaker: user_id "<sample>-<speaker>", that speaker's turns
as role "user" and the other's as "assistant" under character_name "<other speaker>", every turn with its
speaker's name (`speaker`). A forced batch runs after each session. Each question is embedded once and
both perspectives go through `MemoryIntegration.candidates`, merged by score (a window both perspectives
stored counts once); a few questions per conversation also go through `build_context` to check that it
puts in context what this script does.

Systems, all rendered by the product's `render_context` within the same token budget:
  recall     the context service: episodes (near-duplicates dropped), then extracted memories
  episodes   its episodes alone
  memories   its extracted memories alone
  windows    the plain baseline: every 3-turn window of the raw conversation ("Speaker: text" lines),
             embedded with the same model, top-k by cosine

Metrics per category: answer recall (share of the gold answer's content words in the context text),
evidence recall@5/@10 through source turns (also without summary memories), source turns per retrieved
item, context tokens. Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import firestore_emulator
from scripts.bench_common import clear_project, report
from services.config import Settings
from services.container import Container
from services.context_format import ContextBudget, render_context
from services.embedder import LocalEmbedder
from services.memory_integration import arrange
from services.models import Memory, MemoryHit, Role

# shared/ lies beside the repository (a clone and its copy of shared/ share a parent folder).
DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "locomo10.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
TOKEN_BUDGET = 400
RANKED = 20  # items each system ranks; the token budget, not this, decides what reaches the context
DEFAULT_SAMPLES = ("conv-26", "conv-30", "conv-41", "conv-42")  # --all: the 10 (several times longer)
QUICK_SAMPLES = ("conv-26", "conv-30")
CHECKED = 5  # questions per conversation also asked through build_context, to check this script's path
QUICK_QUESTIONS = 40
SYSTEMS = ("recall", "episodes", "memories", "windows")
# Function words dropped from answers and contexts before comparing them.
_STOPWORD_TEXT = (
    "a an the and or but of to in on at for with by from as is are was were be been being it its this that these "
    "those he she they them his her their him i me my we our you your do does did has have had not no so than then "
    "there here what which who whom when where why how all any some about into over after before up out also just "
    "very can could would should will shall might must s t"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_EVIDENCE = re.compile(r"D:?(\d+):(\d+)")
_WORD = re.compile(r"[a-z0-9]+")
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
# fmt: off
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# fmt: on


def progress(message: str) -> None:
    print(f"[bench_quality] {message}", file=sys.stderr, flush=True)


# -- the data ----------------------------------------------------------------------------------


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str
    at: datetime


@dataclass
class Question:
    text: str
    answer: str
    evidence: set[str]
    category: int


@dataclass
class Sample:
    sample_id: str
    speakers: tuple[str, str]
    sessions: list[list[Turn]]
    questions: list[Question]

    @property
    def turns(self) -> list[Turn]:
        return [t for session in self.sessions for t in session]


def parse_session_date(value: str) -> datetime:
    """ "1:56 pm on 8 May, 2023" as an aware datetime (UTC)."""
    return datetime.strptime(value, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def normalise_dia_id(value: str) -> list[str]:
    """ "D8:6; D9:17", "D:11:26", "D30:05" -> canonical "D<session>:<turn>" ids."""
    return [f"D{int(s)}:{int(t)}" for s, t in _EVIDENCE.findall(value)]


def turn_text(raw: dict[str, Any]) -> str:
    # A shared photo reaches a chat product as the photo; its caption is the closest text stand-in.
    caption = raw.get("blip_caption")
    return f"{raw['text']} [shares {caption}]" if caption else str(raw["text"])


def load_sample(raw: dict[str, Any], max_questions: int | None) -> Sample:
    conv = raw["conversation"]
    numbers = sorted(int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k))
    sessions = []
    for n in numbers:
        start = parse_session_date(conv[f"session_{n}_date_time"])
        sessions.append(
            [
                Turn(normalise_dia_id(t["dia_id"])[0], t["speaker"], turn_text(t), start + timedelta(minutes=i))
                for i, t in enumerate(conv[f"session_{n}"])
            ]
        )
    known = {t.dia_id for s in sessions for t in s}
    questions = [
        Question(q["question"], str(q["answer"]), {e for ev in q["evidence"] for e in normalise_dia_id(ev)} & known, c)
        for q in raw["qa"]
        if (c := int(q["category"])) in CATEGORIES
    ]
    if max_questions and len(questions) > max_questions:
        # Spread over the whole list: the dataset groups questions by category and by session.
        step = len(questions) / max_questions
        questions = [questions[int(i * step)] for i in range(max_questions)]
    return Sample(raw["sample_id"], (conv["speaker_a"], conv["speaker_b"]), sessions, questions)


def load_samples(path: Path, ids: Sequence[str] | None, max_questions: int | None) -> list[Sample]:
    raw = json.loads(path.read_text())
    return [load_sample(r, max_questions) for r in raw if ids is None or r["sample_id"] in ids]


# -- ingestion through the pipeline -----------------------------------------------------------


@dataclass
class Ingested:
    """One conversation in the store: its two perspectives and where each message came from."""

    sample: Sample
    perspectives: list[tuple[str, str]]  # (user_id, character_name)
    dia_of: dict[str, str] = field(default_factory=dict)
    batches: int = 0


def perspectives_of(sample: Sample) -> list[tuple[str, str]]:
    a, b = sample.speakers
    return [(f"{sample.sample_id}-{a}", b), (f"{sample.sample_id}-{b}", a)]


def ingest(container: Container, sample: Sample) -> Ingested:
    done = Ingested(sample, perspectives_of(sample))
    for session in sample.sessions:
        for user_id, other in done.perspectives:
            for turn in session:
                role: Role = "assistant" if turn.speaker == other else "user"
                message = container.store.save_message(
                    user_id, other, role=role, text=turn.text, created_at=turn.at, speaker=turn.speaker
                )
                done.dia_of[message.id] = turn.dia_id
            done.batches += flush(container, user_id, other)
    return done


def flush(container: Container, user_id: str, character: str) -> int:
    """Run the conversation's batches now, as the idle flush would after a session."""
    outcomes = container.processor.run_chain(container.processor.claim(user_id, character, force=True))
    failed = [o for o in outcomes if o.status != "succeeded"]
    if failed:
        raise RuntimeError(f"batch for {user_id}/{character} {failed[0].status}: {failed[0].error}")
    return len(outcomes)


# -- raw windows -------------------------------------------------------------------------------


@dataclass
class Windows:
    hits: list[Memory]
    vectors: np.ndarray


def windows_of(sample: Sample) -> list[Memory]:
    """Every run of 3 consecutive turns within a session, "Speaker: text" lines, shaped as episodes so that
    `render_context` lays them out exactly as the product's own."""
    items = []
    for session in sample.sessions:
        for start in range(max(1, len(session) - 2)):
            turns = session[start : start + 3]
            items.append(
                Memory(
                    id=str(uuid.uuid4()),
                    user_id=sample.sample_id,
                    character_name="window",
                    text="\n".join(f"{t.speaker}: {t.text}" for t in turns),
                    type="episode",
                    importance=0.5,
                    source_message_ids=[t.dia_id for t in turns],
                    occurred_at=turns[0].at,
                    created_at=turns[0].at,
                    batch_id="window",
                )
            )
    return items


def embed_windows(embedder: LocalEmbedder, sample: Sample) -> Windows:
    hits = windows_of(sample)
    return Windows(hits, np.asarray(embedder.embed([m.text for m in hits]), dtype=np.float32))


def top_windows(windows: Windows, query: np.ndarray, min_score: float | None) -> list[MemoryHit]:
    scores = windows.vectors @ query
    order = np.argsort(-scores)[:RANKED]
    return [
        MemoryHit(memory=windows.hits[i], score=float(scores[i]))
        for i in order
        if min_score is None or scores[i] >= min_score
    ]


# -- the systems -------------------------------------------------------------------------------


def product_candidates(
    container: Container, ingested: Ingested, vector: np.ndarray
) -> tuple[list[MemoryHit], list[MemoryHit]]:
    """Both perspectives through `MemoryIntegration.candidates`, merged by score, sources as dialogue ids.

    The two perspectives store the same window of turns twice (under different message ids); it counts once.
    """
    episodes: list[MemoryHit] = []
    memories: list[MemoryHit] = []
    for user_id, character in ingested.perspectives:
        found = container.integration.candidates(user_id, character, vector.tolist(), "whatsapp")
        episodes += as_dialogue(found[0], ingested.dia_of)
        memories += as_dialogue(found[1], ingested.dia_of)
    once = {tuple(h.memory.source_message_ids): h for h in sorted(episodes, key=lambda h: h.score)}
    return by_score(list(once.values())), by_score(memories)


def as_dialogue(hits: list[MemoryHit], dia_of: dict[str, str]) -> list[MemoryHit]:
    return [
        h.model_copy(update={"memory": h.memory.model_copy(update={"source_message_ids": dialogue_ids(h, dia_of)})})
        for h in hits
    ]


def dialogue_ids(hit: MemoryHit, dia_of: dict[str, str]) -> list[str]:
    return [dia_of.get(mid, mid) for mid in hit.memory.source_message_ids]


def context_service_agrees(container: Container, ingested: Ingested, question: str, vector: np.ndarray) -> bool:
    """Does `build_context` on one perspective put in context what this script's path puts there?"""
    user_id, character = ingested.perspectives[0]
    integration = container.integration
    context = integration.build_context(user_id, character, question, "whatsapp")
    episodes, memories = integration.candidates(user_id, character, vector.tolist(), "whatsapp")
    _, _, used, _ = render_context(arrange(episodes, memories, integration.budget), [], "whatsapp", integration.budget)
    return [h.memory.id for h in context.memories] == [h.memory.id for h in used]


def by_score(hits: list[MemoryHit]) -> list[MemoryHit]:
    return sorted(hits, key=lambda h: -h.score)


def rank_all(
    container: Container, ingested: Ingested, windows: Windows, vector: np.ndarray
) -> dict[str, list[MemoryHit]]:
    budget = container.integration.budget
    episodes, memories = product_candidates(container, ingested, vector)
    return {
        "recall": arrange(episodes, memories, budget),
        "episodes": arrange(episodes, [], budget),
        "memories": memories[:RANKED],
        "windows": top_windows(windows, vector, budget.min_score),
    }


# -- metrics -----------------------------------------------------------------------------------


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def spell_dates(text: str) -> str:
    """ "2023-05-08" -> "8 May 2023", as a reader of the context would take it."""
    return _ISO_DATE.sub(lambda m: f"{int(m[3])} {MONTHS[int(m[2]) - 1]} {m[1]}", text)


def answer_recall(answer: str, context: str) -> float | None:
    gold = content_words(answer)
    return len(gold & content_words(spell_dates(context))) / len(gold) if gold else None


def evidence_recall(hits: Sequence[MemoryHit], gold: set[str], dia_of: dict[str, str], k: int) -> float:
    found = {dia_of.get(mid, mid) for h in hits[:k] for mid in h.memory.source_message_ids}
    return len(gold & found) / len(gold)


def score_question(
    hits: list[MemoryHit], question: Question, dia_of: dict[str, str], budget: ContextBudget
) -> dict[str, float | None]:
    text, tokens, used, _ = render_context(hits, [], "whatsapp", budget)
    precise = [h for h in hits if h.memory.type != "summary"]
    has_gold = bool(question.evidence)
    row: dict[str, float | None] = {
        "answer_recall": answer_recall(question.answer, text),
        "context_tokens": float(tokens),
        "items_in_context": float(len(used)),
        "source_turns_per_item@10": statistics.fmean(len(h.memory.source_message_ids) for h in hits[:10])
        if hits
        else None,
    }
    # What reaches the prompt: the items that fit the token budget.
    in_context = evidence_recall(used, question.evidence, dia_of, len(used)) if has_gold else None
    row["evidence_recall_in_context"] = in_context
    for k in (5, 10):
        row[f"evidence_recall@{k}"] = evidence_recall(hits, question.evidence, dia_of, k) if has_gold else None
        row[f"evidence_recall@{k}_no_summary"] = (
            evidence_recall(precise, question.evidence, dia_of, k) if has_gold else None
        )
    return row


def aggregate(rows: list[tuple[int, dict[str, float | None]]]) -> dict[str, Any]:
    """Means per category and overall (a metric's mean skips questions where it is undefined)."""
    groups: dict[str, list[dict[str, float | None]]] = defaultdict(list)
    for category, row in rows:
        groups[f"{category} {CATEGORIES[category]}"].append(row)
        groups["overall"].append(row)
    return {name: mean_rows(group) for name, group in sorted(groups.items())}


def mean_rows(rows: list[dict[str, float | None]]) -> dict[str, float | int]:
    out: dict[str, float | int] = {"n": len(rows)}
    for key in rows[0]:
        values = [v for r in rows if (v := r[key]) is not None]
        out[key] = round(statistics.fmean(values), 4) if values else float("nan")
    return out


def winners(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    metrics = (
        "answer_recall",
        "evidence_recall_in_context",
        "evidence_recall@5",
        "evidence_recall@10",
        "evidence_recall@10_no_summary",
    )
    groups = next(iter(results.values())).keys()
    return {m: {g: max(results, key=lambda s: results[s][g][m]) for g in groups} for m in metrics}


# -- extractor diagnostics ---------------------------------------------------------------------


def extractor_stats(container: Container, ingested: list[Ingested]) -> dict[str, Any]:
    memories = [
        m
        for done in ingested
        for user_id, character in done.perspectives
        for m in container.vectors.list_memories(user_id, character, limit=100_000)
    ]
    facts = [m for m in memories if m.type not in ("summary", "episode")]
    summaries = [m for m in memories if m.type == "summary"]
    turns = sum(len(done.sample.turns) for done in ingested)
    return {
        "memories": len(memories) - sum(m.type == "episode" for m in memories),
        "by_type": dict(Counter(m.type for m in memories).most_common()),
        "user_turns": turns,  # each turn is a user turn in exactly one perspective
        "facts_per_user_turn": round(len(facts) / turns, 3),
        "facts_naming_no_one": round(sum("user" in m.text.lower() for m in facts) / max(1, len(facts)), 3),
        "summary_source_turns_mean": round(statistics.fmean(len(m.source_message_ids) for m in summaries), 1),
        "examples": [m.text for m in facts[:: max(1, len(facts) // 8)]][:8],
    }


# -- the run -----------------------------------------------------------------------------------


Rows = list[tuple[int, dict[str, float | None]]]


def evaluate(container: Container, embedder: LocalEmbedder, done: Ingested) -> tuple[dict[str, Rows], int]:
    """Every system's scores for the conversation's questions, and how many of the first CHECKED questions
    `build_context` answered with exactly the memories this script put in context."""
    windows = embed_windows(embedder, done.sample)
    questions = done.sample.questions
    vectors = np.asarray(embedder.embed([q.text for q in questions]), dtype=np.float32)
    budget = container.integration.budget
    rows: dict[str, list[tuple[int, dict[str, float | None]]]] = {s: [] for s in SYSTEMS}
    for question, vector in zip(questions, vectors, strict=True):
        for system, hits in rank_all(container, done, windows, vector).items():
            rows[system].append((question.category, score_question(hits, question, done.dia_of, budget)))
    checked = zip(questions[:CHECKED], vectors[:CHECKED], strict=True)
    agreed = sum(context_service_agrees(container, done, q.text, v) for q, v in checked)
    return rows, agreed


def settings_for(host: str, project: str, tmp: Path) -> Settings:
    return Settings(
        _env_file=None,
        google_cloud_project=project,
        firestore_emulator_host=host,
        qdrant_path=tmp / "edge",
        batch_max_messages=100,
        context_token_budget=TOKEN_BUDGET,
        context_memory_limit=RANKED,
        context_recent_turns=0,
        listener_enabled=False,
    )


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    started = time.perf_counter()
    ids = None if args.all else args.samples or (QUICK_SAMPLES if args.quick else DEFAULT_SAMPLES)
    samples = load_samples(args.data, ids, QUICK_QUESTIONS if args.quick else args.max_questions)
    with contextlib.redirect_stdout(sys.stderr):
        host = stack.enter_context(firestore_emulator.ensure_running())
    project = f"demo-bench-quality-{uuid.uuid4().hex[:8]}"
    stack.callback(clear_project, host, project)
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recall-bench-quality-")))
    progress("loading all-MiniLM-L6-v2")
    embedder = LocalEmbedder()
    container = Container.build(settings_for(host, project, tmp), embedder=embedder)
    stack.callback(container.close)
    if args.episode_share is not None:
        container.integration.budget = replace(container.integration.budget, episode_share=args.episode_share)

    rows: dict[str, Rows] = {s: [] for s in SYSTEMS}
    agreed = 0
    ingested, timings = [], {"ingest_s": 0.0, "query_s": 0.0}
    for sample in samples:
        t0 = time.perf_counter()
        done = ingest(container, sample)
        t1 = time.perf_counter()
        system_rows, agreed_here = evaluate(container, embedder, done)
        for system, these in system_rows.items():
            rows[system].extend(these)
        agreed += agreed_here
        timings["ingest_s"] += t1 - t0
        timings["query_s"] += time.perf_counter() - t1
        ingested.append(done)
        progress(
            f"{sample.sample_id}: {len(sample.turns)} turns x2 perspectives, {done.batches} batches in "
            f"{t1 - t0:.0f} s; {len(sample.questions)} questions in {time.perf_counter() - t1:.0f} s"
        )
    results = {system: aggregate(system_rows) for system, system_rows in rows.items()}
    return {
        "benchmark": "quality-locomo",
        "mode": "quick" if args.quick else "default",
        "conversations": [s.sample_id for s in samples],
        "questions": sum(len(s.questions) for s in samples),
        "token_budget": TOKEN_BUDGET,
        "ranked_per_system": RANKED,
        "min_score": container.integration.budget.min_score,
        "episode_share": container.integration.budget.episode_share,
        "embedder": embedder.name,
        "extractor": container.extractor.name,
        "context_service_check": {
            "checked": sum(min(CHECKED, len(s.questions)) for s in samples),
            "same_memories_as_build_context": agreed,
        },
        "results": results,
        "winners": winners(results),
        "extractor_stats": extractor_stats(container, ingested),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 conversations, 40 questions each (< 2 minutes)")
    parser.add_argument("--all", action="store_true", help="all 10 conversations (1,540 questions)")
    parser.add_argument("--samples", nargs="+", help="sample ids to run, e.g. conv-26 conv-30")
    parser.add_argument("--max-questions", type=int, default=None, help="questions per conversation (categories 1-4)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--episode-share", type=float, help="ContextBudget.episode_share to render with (default: the product's)"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def measured() -> dict[str, Any]:
        with quiet_libraries(), contextlib.ExitStack() as stack:
            return run(args, stack)

    return report(measured)


if __name__ == "__main__":
    sys.exit(main())
