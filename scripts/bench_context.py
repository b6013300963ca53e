"""Context latency benchmark: `get_conversation_context` and the bare vector search, at 1k/10k/100k memories.

    .venv/bin/python scripts/bench_context.py            # 1k, 10k, 100k memories (about 5 minutes)
    .venv/bin/python scripts/bench_context.py --quick    # 1k, 10k, fewer queries (under 2 minutes)

Memories are synthetic third-person statements built from templates, spread over 1,000 users and two
characters, embedded with the real all-MiniLM-L6-v2; every query is scoped to one user and character.
A pool of distinct texts is embedded once and its real vectors are reused when there are more points
than texts (the JSON says how many were distinct). The recent turns come from a real Firestore emulator
(FIRESTORE_EMULATOR_HOST, or one started here), two ways: `first_call_context_ms` is each conversation's
first call, which reads them (and opens the conversation's listener); `context_ms` are the calls of
conversations already talked in, served by their listeners (services/recent_turns.py), as many
conversations at a time as the context service keeps listeners for (CONTEXT_LIVE_CONVERSATIONS). The same workload
runs on Qdrant Edge and on qdrant-client's local mode in the same run; ratios are Edge / local mode (below
1: Edge is faster), both on live conversations.

Progress goes to stderr; the figures are one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.cloud import firestore

from scripts import firestore_emulator
from scripts.bench_common import clear_project, report
from services.config import Settings
from services.container import build_firestore_client
from services.context_format import ContextBudget, render_context
from services.edge_vector_store import EdgeVectorStore
from services.embedder import LocalEmbedder
from services.memory_integration import MemoryIntegration
from services.message_store import MessageStore
from services.models import Memory, MemoryType, StoredType
from services.qdrant_vector_store import QdrantVectorStore
from services.recent_turns import RecentTurns
from services.vector_store import VectorStore

USERS = 1000
CHARACTERS = ("meher", "arjun")
QUERY_CONVERSATIONS = 200
RECENT_TURNS_PER_CONVERSATION = 10
UPSERT_BATCH = 1000
WARM_UP = 20

# fmt: off
NAMES = ("Maya", "Tom", "Priya", "Lucas", "Amara", "Kenji", "Sofia", "Omar", "Lena", "Diego", "Aisha", "Noah",
         "Chloe", "Ravi", "Ingrid", "Mateo", "Zara", "Felix", "Hana", "Samuel", "Nadia", "Elias", "Yuki", "Grace",
         "Tariq", "Olivia", "Marco", "Leila", "Jonas", "Camila", "Arjun", "Freya", "Kwame", "Elena", "Hugo",
         "Mei", "Ibrahim", "Clara", "Dev", "Rosa")
RELATIONS = ("sister", "brother", "mother", "father", "best friend", "partner", "cousin", "colleague", "neighbour",
             "grandmother", "grandfather", "son", "daughter", "roommate", "boss", "aunt", "uncle", "husband", "wife")
JOBS = ("nurse", "firefighter", "primary school teacher", "software engineer", "pharmacist", "architect", "chef",
        "bus driver", "accountant", "veterinarian", "graphic designer", "electrician", "dentist", "journalist",
        "physiotherapist", "police officer", "pilot", "lawyer", "barista", "data analyst", "carpenter",
        "social worker", "librarian", "marine biologist", "paramedic", "florist", "translator", "plumber")
PLACES = ("Lisbon", "Denver", "Berlin", "Mumbai", "Toronto", "Nairobi", "Osaka", "Buenos Aires", "Dublin", "Seoul",
          "Cape Town", "Melbourne", "Oslo", "Marseille", "Austin", "Krakow", "Hanoi", "Glasgow", "Lima", "Istanbul",
          "Vancouver", "Accra", "Porto", "Chicago", "Kyoto", "Edinburgh", "Bogota", "Seville", "Helsinki", "Perth")
HOBBIES = ("hiking in the mountains", "painting watercolours", "playing the guitar", "rock climbing",
           "baking sourdough bread", "running half marathons", "playing chess online", "gardening",
           "birdwatching", "knitting scarves", "surfing", "photography", "salsa dancing", "cycling to work",
           "writing short stories", "playing football on Sundays", "yoga in the morning", "restoring old bikes",
           "collecting vinyl records", "swimming in the lake", "bouldering", "pottery classes", "board games")
FOODS = ("pastel de nata", "ramen", "spicy paneer curry", "sushi", "lasagna", "falafel wraps", "pho", "tacos al pastor",
         "mushroom risotto", "jollof rice", "dumplings", "pancakes with maple syrup", "green curry", "pierogi",
         "shakshuka", "fish and chips", "chocolate cake", "lentil soup", "peanut butter", "shellfish", "coffee")
PETS = ("golden retriever", "tabby cat", "border collie", "rabbit", "parrot", "dachshund", "black cat", "hamster")
PET_NAMES = ("Biscuit", "Luna", "Pepper", "Milo", "Olive", "Ziggy", "Mochi", "Rocky", "Nala", "Pixel", "Bruno")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LANGUAGES = ("Portuguese", "Japanese", "Spanish", "German", "Korean", "Hindi", "French", "Italian", "Swahili")
FEELINGS = ("anxious", "excited", "stressed", "proud", "nervous", "homesick", "overwhelmed", "relieved")
EVENTS = ("a job interview", "the move to a new flat", "a dentist appointment", "a wedding speech",
          "the final exams", "a first date", "a performance review", "a surgery", "the driving test")
TEMPLATES: tuple[tuple[MemoryType, str], ...] = (
    ("relationship", "{u}'s {rel} {name} works as a {job} in {place}."),
    ("relationship", "{u}'s {rel} {name} lives in {place} and loves {hobby}."),
    ("relationship", "{u} talks to their {rel} {name} on the phone every {day}."),
    ("fact", "{u} works as a {job} in {place}."),
    ("fact", "{u} grew up in {place} and moved to {place2} for work."),
    ("fact", "{u} has a {pet} called {pet_name} who is {age} years old."),
    ("fact", "{u} is allergic to {food}."),
    ("fact", "{u} is learning {language} to talk to their {rel} {name}."),
    ("preference", "{u} loves {hobby} on weekends."),
    ("preference", "{u}'s favourite food is {food}."),
    ("preference", "{u} can't stand {food} and never orders it."),
    ("preference", "{u} enjoys {hobby} with their {rel} {name}."),
    ("plan", "{u} is planning a trip to {place} in {month} to visit their {rel} {name}."),
    ("plan", "{u} has {event} on {day} and wants to prepare for it."),
    ("plan", "{u} wants to start {hobby} in {month}."),
    ("event", "{u} went {hobby} in {place} last {month} with {name}."),
    ("event", "{u}'s {rel} {name} got a new job as a {job} in {month}."),
    ("emotion", "{u} feels {feeling} about {event}."),
    ("emotion", "{u} felt {feeling} after talking to their {rel} {name}."),
)
QUERIES = ("what does my {rel} do for a living?", "any ideas for what I could do this weekend?",
           "I'm cooking tonight, what should I make?", "how should I prepare for {event}?",
           "do you remember my pet's name?", "where did I grow up again?", "when is my trip to {place}?",
           "I'm feeling {feeling} today", "should I call my {rel} this week?", "what was I learning lately?",
           "can you recommend a restaurant for me?", "I had a long day at work", "tell me something about {name}",
           "what hobbies do I have?", "I can't sleep, talk to me", "how is my {rel} doing?")
TURNS = ("I just got back from {hobby}.", "My {rel} called me this morning.", "Work was exhausting today.",
         "That sounds lovely, tell me more.", "I'm thinking about visiting {place} soon.",
         "Do you think I should try {hobby}?", "Haha, you always know what to say.", "I had {food} for lunch.")
REPLIES = ("That sounds lovely, tell me more!", "How did that make you feel?", "Oh nice, how is your {rel} doing?",
           "What are you looking forward to most?", "Do you want some ideas for {hobby}?", "How was {place}?")
# fmt: on


def fill_template(template: str, rng: random.Random) -> str:
    places = rng.sample(PLACES, 2)
    return template.format(
        u=rng.choice(NAMES),
        rel=rng.choice(RELATIONS),
        name=rng.choice(NAMES),
        job=rng.choice(JOBS),
        place=places[0],
        place2=places[1],
        hobby=rng.choice(HOBBIES),
        food=rng.choice(FOODS),
        pet=rng.choice(PETS),
        pet_name=rng.choice(PET_NAMES),
        age=rng.randint(1, 14),
        month=rng.choice(MONTHS),
        day=rng.choice(DAYS),
        language=rng.choice(LANGUAGES),
        feeling=rng.choice(FEELINGS),
        event=rng.choice(EVENTS),
    )


def memory_texts(count: int, rng: random.Random) -> list[tuple[StoredType, str]]:
    """`count` distinct synthetic points, each with its type: extracted memories and, as a batch stores
    about as many of them, episodes (three turns of chat)."""
    seen: dict[str, StoredType] = {}
    while len(seen) < count:
        if len(seen) % 2:
            kind, template = rng.choice(TEMPLATES)
            seen.setdefault(fill_template(template, rng), kind)
        else:
            lines = (chat_line(TURNS, rng), chat_line(REPLIES, rng), chat_line(TURNS, rng))
            seen.setdefault("user: {}\nmeher: {}\nuser: {}".format(*lines), "episode")
    return [(kind, text) for text, kind in seen.items()]


def chat_line(templates: Sequence[str], rng: random.Random) -> str:
    return fill_template(rng.choice(templates), rng)


# -- statistics --------------------------------------------------------------------------------


def summarize(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p95, p99 and max of latencies in milliseconds."""
    if len(samples_ms) < 2:
        value = round(samples_ms[0], 3) if samples_ms else float("nan")
        return {"n": len(samples_ms), "p50": value, "p95": value, "p99": value, "max": value}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {
        "n": len(samples_ms),
        "p50": round(statistics.median(samples_ms), 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "max": round(max(samples_ms), 3),
    }


def ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> dict[str, float]:
    return {k: round(numerator[k] / denominator[k], 4) for k in ("p50", "p95") if denominator.get(k)}


def progress(message: str) -> None:
    print(f"[bench_context {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the workload ------------------------------------------------------------------------------


@dataclass
class Plan:
    sizes: list[int]
    pool: int
    edge_contexts: int
    edge_searches: int
    breakdown: int
    local_queries: dict[int, int]
    mode: str = "default"
    seed: int = 7

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            plan = cls([1_000, 10_000], 1_000, 200, 500, 100, {1_000: 50, 10_000: 20}, mode="quick")
        else:
            plan = cls([1_000, 10_000, 100_000], 20_000, 1_000, 2_000, 300, {1_000: 200, 10_000: 50, 100_000: 15})
        if args.sizes:
            plan.sizes = sorted(args.sizes)
        plan.seed = args.seed
        return plan


@dataclass
class Corpus:
    """The pool of embedded texts and the points drawn from it."""

    texts: list[tuple[StoredType, str]]
    vectors: list[list[float]]
    rng: random.Random
    conversations: list[tuple[str, str]] = field(default_factory=list)
    written: int = 0

    def memories(self, start: int, stop: int) -> tuple[list[Memory], list[list[float]]]:
        """Points `start`..`stop`: round-robin over users, a random character each, a pool text each."""
        now = datetime.now(UTC)
        memories, vectors = [], []
        batch_id = uuid.uuid4().hex
        for i in range(start, stop):
            user = f"user-{i % USERS:04d}"
            character = self.rng.choice(CHARACTERS)
            pick = i if i < len(self.texts) else self.rng.randrange(len(self.texts))
            kind, text = self.texts[pick]
            memories.append(
                Memory(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench:{i}")),
                    user_id=user,
                    character_name=character,
                    text=text,
                    type=kind,
                    importance=round(self.rng.uniform(0.3, 0.9), 2),
                    source_message_ids=[f"msg-{i}-a", f"msg-{i}-b"],
                    created_at=now - timedelta(days=self.rng.uniform(0, 365)),
                    batch_id=batch_id,
                    channel=self.rng.choice(("whatsapp", "voice")),
                )
            )
            vectors.append(self.vectors[pick])
        return memories, vectors


@dataclass
class Query:
    user_id: str
    character_name: str
    text: str
    vector: list[float]


class Backend:
    """One vector store with its context service."""

    def __init__(self, name: str, vectors: VectorStore, integration: MemoryIntegration) -> None:
        self.name = name
        self.vectors = vectors
        self.integration = integration
        self.insert_s = 0.0

    def insert(self, memories: list[Memory], vectors: list[list[float]]) -> None:
        start = time.perf_counter()
        for k in range(0, len(memories), UPSERT_BATCH):
            self.vectors.upsert(memories[k : k + UPSERT_BATCH], vectors[k : k + UPSERT_BATCH])
        self.insert_s += time.perf_counter() - start

    def contexts(self, queries: Sequence[Query]) -> tuple[list[float], int]:
        """Latency of each `get_conversation_context` call, and how many degraded."""

        async def run() -> tuple[list[float], int]:
            samples, degraded = [], 0
            for q in queries:
                start = time.perf_counter()
                ctx = await self.integration.get_conversation_context(
                    user_id=q.user_id, character_name=q.character_name, current_message=q.text, channel="whatsapp"
                )
                samples.append((time.perf_counter() - start) * 1000)
                degraded += ctx.degraded
                if ctx.degraded:
                    progress(f"{self.name}: context degraded: {ctx.reason}")
            return samples, degraded

        return asyncio.run(run())

    def searches(self, queries: Sequence[Query], budget: ContextBudget) -> list[float]:
        samples = []
        for q in queries:
            start = time.perf_counter()
            self.vectors.search(q.user_id, q.character_name, q.vector, budget.memory_limit, budget.min_score)
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    def close(self) -> None:
        self.integration.close()
        self.vectors.close()


def breakdown(
    backend: Backend, store: MessageStore, embedder: LocalEmbedder, queries: Sequence[Query], budget: ContextBudget
) -> dict[str, dict[str, float | int]]:
    """Each step of build_context timed on its own, in sequence (the product overlaps the recent turns).

    The recent turns two ways: from the conversation's listener (what a call of a live conversation does)
    and read from Firestore (what a conversation's first call does).
    """
    steps = ("embed_query", "vector_search", "recent_turns_listened", "firestore_recent_turns", "render")
    parts: dict[str, list[float]] = {name: [] for name in steps}
    recent_turns = backend.integration.recent_turns
    for q in (q for group in in_live_groups(backend, queries) for q in group):
        marks = [time.perf_counter()]
        vector = embedder.embed_query(q.text)
        marks.append(time.perf_counter())
        hits = backend.vectors.search(q.user_id, q.character_name, vector, budget.memory_limit, budget.min_score)
        marks.append(time.perf_counter())
        recent = recent_turns.get(q.user_id, q.character_name)
        marks.append(time.perf_counter())
        store.recent_unsynced(q.user_id, q.character_name, budget.recent_turns)
        marks.append(time.perf_counter())
        render_context(hits, recent, "whatsapp", budget)
        marks.append(time.perf_counter())
        for name, (a, b) in zip(steps, pairwise(marks), strict=True):
            parts[name].append((b - a) * 1000)
    return {name: summarize(samples) for name, samples in parts.items()}


def make_queries(corpus: Corpus, embedder: LocalEmbedder, count: int) -> list[Query]:
    texts = [chat_line(QUERIES, corpus.rng) for _ in range(count)]
    vectors = embedder.embed(texts)
    return [
        Query(*corpus.rng.choice(corpus.conversations), text, vector)
        for text, vector in zip(texts, vectors, strict=True)
    ]


def write_recent_turns(client: firestore.Client, conversations: Sequence[tuple[str, str]], rng: random.Random) -> None:
    """Unsynced turns in every queried conversation, so the recent-turns read returns real documents."""
    start = datetime.now(UTC) - timedelta(hours=1)
    for user_id, character in conversations:
        batch = client.batch()
        messages = client.collection("users").document(user_id).collection("characters").document(character)
        for j in range(RECENT_TURNS_PER_CONVERSATION):
            batch.set(
                messages.collection("messages").document(),
                {
                    "role": "user" if j % 2 == 0 else "assistant",
                    "text": chat_line(TURNS, rng),
                    "channel": "whatsapp",
                    "created_at": start + timedelta(seconds=j),
                    "sync": False,
                },
            )
        batch.commit()


def go_live(backend: Backend, conversations: Sequence[tuple[str, str]], timeout_s: float = 120.0) -> None:
    """Open the recent-turns listener of every conversation and wait until each serves its view."""
    recent = backend.integration.recent_turns
    for conversation in conversations:
        recent.open(*conversation)
    deadline = time.monotonic() + timeout_s
    while not all(recent.is_live(*c) for c in conversations):
        if time.monotonic() > deadline:
            raise RuntimeError(f"recent-turns listeners not live after {timeout_s:.0f} s: is the emulator overloaded?")
        time.sleep(0.05)


def first_calls(backend: Backend, queries: Sequence[Query]) -> tuple[list[float], int]:
    """The first context call of each conversation (no listener yet: the recent turns are read).

    One conversation at a time, as new conversations come: each call's listener is open before the next
    call (the emulator serves listeners on these same two cores; a burst of new ones slows what runs beside).
    """
    backend.integration.recent_turns.clear()
    firsts = list({(q.user_id, q.character_name): q for q in queries}.values())
    samples, degraded = [], 0
    for q in firsts:
        [sample], failed = backend.contexts([q])
        samples.append(sample)
        degraded += failed
        go_live(backend, [(q.user_id, q.character_name)])
    return samples, degraded


def in_live_groups(backend: Backend, queries: Sequence[Query]) -> Iterator[list[Query]]:
    """The queries in groups of as many conversations as the context service keeps listeners for, each
    group's listeners open when it is yielded; queries keep their order within a group."""
    capacity = backend.integration.recent_turns.capacity
    if capacity == 0:  # CONTEXT_LIVE_CONVERSATIONS=0: no listeners, every call reads
        yield list(queries)
        return
    conversations = list(dict.fromkeys((q.user_id, q.character_name) for q in queries))
    for k in range(0, len(conversations), capacity):
        group = set(conversations[k : k + capacity])
        go_live(backend, list(group))
        yield [q for q in queries if (q.user_id, q.character_name) in group]


def later_calls(backend: Backend, queries: Sequence[Query]) -> tuple[list[float], int]:
    """Context calls of conversations under way, their listeners open (CONTEXT_LIVE_CONVERSATIONS=0: reads)."""
    samples, degraded = [], 0
    for group in in_live_groups(backend, queries):
        group_samples, group_degraded = backend.contexts(group)
        samples += group_samples
        degraded += group_degraded
    return samples, degraded


def measure_level(
    size: int, backends: list[Backend], plan: Plan, corpus: Corpus, embedder: LocalEmbedder, store: MessageStore
) -> dict[str, Any]:
    budget = backends[0].integration.budget
    queries = make_queries(corpus, embedder, WARM_UP + max(plan.edge_contexts, plan.edge_searches))
    warm, measured = queries[:WARM_UP], queries[WARM_UP:]
    level: dict[str, Any] = {"memories": size}
    for backend in backends:
        local = backend.name != "qdrant-edge"
        if local and size not in plan.local_queries:
            level[backend.name] = {"skipped": "not measured at this size (see --quick)"}
            continue
        n_ctx = plan.local_queries[size] if local else plan.edge_contexts
        n_search = plan.local_queries[size] if local else plan.edge_searches
        progress(f"{backend.name} at {size:,}: warm-up, then {n_ctx} contexts and {n_search} searches")
        backend.contexts(warm[: 3 if local else WARM_UP])
        backend.searches(warm[: 3 if local else WARM_UP], budget)
        figures: dict[str, Any] = {}
        if not local:
            cold, cold_degraded = first_calls(backend, measured[:n_ctx])
            figures["first_call_context_ms"] = summarize(cold)
            figures["first_call_degraded"] = cold_degraded
        ctx_samples, degraded = later_calls(backend, measured[:n_ctx])
        search_samples = backend.searches(measured[:n_search], budget)
        figures |= {
            "context_ms": summarize(ctx_samples),
            "context_degraded": degraded,
            "search_ms": summarize(search_samples),
        }
        if not local:
            progress(f"{backend.name} at {size:,}: breakdown over {plan.breakdown} queries")
            figures["context_breakdown_ms"] = breakdown(backend, store, embedder, measured[: plan.breakdown], budget)
        level[backend.name] = figures
        backend.integration.recent_turns.clear()  # one process, one context service: the next has its own listeners
        progress(
            f"{backend.name} at {size:,}: context p50 {figures['context_ms']['p50']:.2f} ms "
            f"p95 {figures['context_ms']['p95']:.2f} ms; search p50 {figures['search_ms']['p50']:.3f} ms "
            f"p95 {figures['search_ms']['p95']:.3f} ms"
        )
    edge, local_figures = level["qdrant-edge"], level.get("qdrant-local", {})
    if "context_ms" in local_figures:
        level["edge_over_local"] = {
            "context": ratio(edge["context_ms"], local_figures["context_ms"]),
            "search": ratio(edge["search_ms"], local_figures["search_ms"]),
        }
    return level


# -- the run -----------------------------------------------------------------------------------


def build_backends(
    settings: Settings, store: MessageStore, embedder: LocalEmbedder, tmp: Path, budget: ContextBudget
) -> list[Backend]:
    timeout_s = 30.0  # measure the work, not the product's 250 ms budget; degraded calls are counted anyway
    edge = EdgeVectorStore(tmp / "edge", embedder.dimension)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = QdrantVectorStore.local(":memory:", "bench", embedder.dimension)
    backends = []
    for name, vectors in (("qdrant-edge", edge), ("qdrant-local", local)):
        vectors.ensure_ready()
        recent = RecentTurns(
            store, budget.recent_turns, settings.context_live_conversations, settings.context_live_idle_seconds
        )
        backends.append(Backend(name, vectors, MemoryIntegration(store, embedder, vectors, budget, timeout_s, recent)))
    return backends


def budget_of(settings: Settings) -> ContextBudget:
    # As services.container builds it.
    return ContextBudget(
        token_budget=settings.context_token_budget,
        memory_limit=settings.context_memory_limit,
        recent_turns=settings.context_recent_turns,
        min_score=settings.context_min_score,
        encoding=settings.tiktoken_encoding,
    )


def run(plan: Plan, stack: contextlib.ExitStack) -> dict[str, Any]:
    run_start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        host = stack.enter_context(firestore_emulator.ensure_running())
    project = f"demo-bench-context-{uuid.uuid4().hex[:8]}"
    stack.callback(lambda: clear_project(host, project))
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recall-bench-context-")))
    settings = Settings(
        _env_file=None, google_cloud_project=project, firestore_emulator_host=host, qdrant_path=tmp / "edge"
    )
    client = build_firestore_client(settings)
    stack.callback(client.close)
    store = MessageStore(client)
    budget = budget_of(settings)

    progress("loading all-MiniLM-L6-v2")
    embedder = LocalEmbedder()
    rng = random.Random(plan.seed)
    texts = memory_texts(plan.pool, rng)
    progress(f"embedding {len(texts):,} distinct memory texts")
    start = time.perf_counter()
    vectors = embedder.embed([text for _, text in texts])
    embed_s = time.perf_counter() - start
    progress(f"embedded {len(texts):,} texts in {embed_s:.1f} s ({len(texts) / embed_s:.0f} texts/s)")
    corpus = Corpus(texts, vectors, rng)

    backends = build_backends(settings, store, embedder, tmp, budget)
    for backend in backends:
        stack.callback(backend.close)
    for b in backends:
        b.integration.warm_up()

    levels = []
    for size in plan.sizes:
        memories, points = corpus.memories(corpus.written, size)
        progress(f"upserting {len(memories):,} memories (to {size:,}) into both stores, {UPSERT_BATCH} per call")
        for backend in backends:
            if backend.name == "qdrant-local" and size not in plan.local_queries:
                continue
            backend.insert(memories, points)
        corpus.written = size
        if not corpus.conversations:
            pairs = sorted({(m.user_id, m.character_name) for m in memories})
            corpus.conversations = rng.sample(pairs, min(QUERY_CONVERSATIONS, len(pairs)))
            progress(f"writing {RECENT_TURNS_PER_CONVERSATION} unsynced turns to each of the queried conversations")
            write_recent_turns(client, corpus.conversations, rng)
        levels.append(measure_level(size, backends, plan, corpus, embedder, store))

    return {
        "benchmark": "context",
        "mode": plan.mode,
        "sizes": plan.sizes,
        "users": USERS,
        "characters": list(CHARACTERS),
        "query_conversations": len(corpus.conversations),
        "recent_unsynced_turns_per_conversation": RECENT_TURNS_PER_CONVERSATION,
        "embedder": embedder.name,
        "distinct_memory_texts": len(texts),
        "vectors_reused": max(plan.sizes) > len(texts),
        "pool_embed_texts_per_s": round(len(texts) / embed_s, 1),
        "channel": "whatsapp",
        "memory_limit": budget.memory_limit,
        "min_score": budget.min_score,
        "insert_s": {b.name: round(b.insert_s, 2) for b in backends},
        "levels": levels,
        "targets": targets(levels),
        "elapsed_s": round(time.perf_counter() - run_start, 1),
    }


def targets(levels: list[dict[str, Any]]) -> dict[str, Any]:
    top = levels[-1]
    edge = top["qdrant-edge"]
    return {
        "at_memories": top["memories"],
        "context_p95_ms": edge["context_ms"]["p95"],
        "context_p95_under_20ms": edge["context_ms"]["p95"] < 20,
        "first_call_context_p95_ms": edge["first_call_context_ms"]["p95"],
        "search_p95_ms": edge["search_ms"]["p95"],
        "search_p95_under_2ms": edge["search_ms"]["p95"] < 2,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k and 10k memories, fewer queries (< 2 minutes)")
    parser.add_argument("--sizes", type=int, nargs="+", help="memory counts to measure, e.g. --sizes 1000 50000")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # Local mode warns past 20,000 points: that slowness is what the ratio measures.
        warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
        yield


def main(argv: list[str] | None = None) -> int:
    plan = Plan.of(parse_args(argv))

    def measured() -> dict[str, Any]:
        with quiet_libraries(), contextlib.ExitStack() as stack:
            return run(plan, stack)

    return report(measured)


if __name__ == "__main__":
    sys.exit(main())
