"""The batch processor: claim -> extract -> embed -> upsert -> mark synced.

A message becomes `sync: true` only in the commit that follows a durable upsert of its memories. Any
failure before that releases the claim and leaves the messages unsynced for a later batch. Retried
messages never gain duplicate memories: before upserting, a batch deletes every point that cites one of
its messages (those can only come from an attempt that never committed).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.embedder import Embedder, Passage
from services.episodes import EpisodeDraft, episodes_of, passages
from services.errors import DependencyError, EmbeddingError, ExtractionError, LeaseLostError, RecallError
from services.extractor import Extractor
from services.health import ComponentMonitor
from services.memory_guard import screen
from services.message_store import BatchReport, Claim, MessageStore, utcnow
from services.models import Conversation, Memory, MemoryDraft, Message
from services.redact import redact
from services.vector_store import EPISODE, VectorStore

log = logging.getLogger(__name__)


@dataclass
class TriggerResult:
    user_id: str
    character_name: str
    unsynced_count: int | None  # None: not counted, as a batch of this process is running (batch_running)
    threshold: int
    batch_started: bool
    batch_id: str | None = None
    batch_running: bool = False


@dataclass
class BatchOutcome:
    batch_id: str
    status: str  # succeeded | failed | superseded
    message_count: int
    memory_count: int = 0  # extracted memories; episodes are counted apart
    episode_count: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class BatchPolicy:
    threshold: int = 25
    max_messages: int = 100
    lease_seconds: float = 300.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 300.0
    episodes: bool = True

    def retry_after(self, attempt: int) -> float:
        """Exponential backoff after a batch's `attempt`-th failure."""
        return min(self.retry_base_seconds * 2 ** (attempt - 1), self.retry_max_seconds)


class BatchProcessor:
    def __init__(
        self,
        store: MessageStore,
        extractor: Extractor,
        embedder: Embedder,
        vectors: VectorStore,
        policy: BatchPolicy,
        executor: Executor | None = None,
        monitor: ComponentMonitor | None = None,
    ) -> None:
        self._store = store
        self._extractor = extractor
        self._embedder = embedder
        self._vectors = vectors
        self.policy = policy
        self._executor = executor
        self._monitor = monitor or ComponentMonitor()
        self._chains = _Chains()
        # A seam for fault tests: called as a batch reaches each stage (claimed, extracted, upserted,
        # committing). The crash tests kill the process from here; nothing in the product sets it.
        self.on_stage: Callable[[str, Claim], None] | None = None

    def trigger(self, user_id: str, character_name: str, *, force: bool = False) -> TriggerResult:
        """Count unsynced messages and, at the threshold, claim a batch and run it in the background.

        Returns at once; `force` claims whatever is unsynced (an idle conversation's flush). While this
        process runs batches for the conversation, a trigger counts and claims nothing (`batch_running`):
        the running chain claims the new messages after its batch, so they go in one batch of up to
        `max_messages` rather than a small one beside it, with no read made only to find them held.
        """
        key = (user_id, character_name)
        if not self._chains.enter(key, force):
            return TriggerResult(
                user_id, character_name, None, self.policy.threshold, batch_started=False, batch_running=True
            )
        try:
            while True:  # holding the conversation; triggers that come meanwhile leave word
                unsynced = self._store.count_unsynced(user_id, character_name)
                result = TriggerResult(user_id, character_name, unsynced, self.policy.threshold, batch_started=False)
                enough = unsynced > 0 and (unsynced >= self.policy.threshold or force)
                claim = self.claim(user_id, character_name, force=force) if enough else None
                if claim is not None:
                    break
                pending = self._chains.leave(key)
                if pending is None:
                    return result
                force = force or pending
            if self._executor is not None:
                self._executor.submit(self._chain_of, key, claim)
        except BaseException:
            self._chains.drop(key)
            raise
        if self._executor is None:
            self._chain_of(key, claim)
        result.batch_started, result.batch_id = True, claim.batch_id
        return result

    def claim(self, user_id: str, character_name: str, *, force: bool = False) -> Claim | None:
        return self._store.claim(
            user_id,
            character_name,
            batch_id=uuid.uuid4().hex,
            max_messages=self.policy.max_messages,
            min_messages=1 if force else self.policy.threshold,
            lease_seconds=self.policy.lease_seconds,
        )

    def run_chain(self, claim: Claim | None) -> list[BatchOutcome]:
        """Run a claimed batch, then the next ones while enough unsynced messages remain."""
        outcomes: list[BatchOutcome] = []
        while claim is not None:
            outcome = self.run(claim)
            outcomes.append(outcome)
            if outcome.status != "succeeded":
                break
            claim = self.claim(claim.user_id, claim.character_name, force=claim.forced)
        return outcomes

    def _chain_of(self, key: tuple[str, str], claim: Claim | None) -> None:
        """`run_chain` for a conversation this process holds (from `trigger`), then the claims of any triggers
        that came while it ran, until one finds nothing; the conversation is let go whatever happens."""
        try:
            while True:
                self.run_chain(claim)
                pending = self._chains.leave(key)  # lets go at once if no trigger came: none can be missed
                if pending is None:
                    return
                claim = self.claim(*key, force=pending)
        except BaseException as exc:
            self._chains.drop(key)
            if not isinstance(exc, Exception):
                raise
            # On a worker thread nobody waits on: say it; the next trigger (or the sweep) tries again.
            log.exception("batches for %s/%s stopped", *key)

    def run(self, claim: Claim) -> BatchOutcome:
        outcome = BatchOutcome(claim.batch_id, "failed", len(claim.messages))
        stage = "extract"
        try:
            self._reached("claimed", claim)
            with _timed(outcome.timings_ms, "extract"):
                memories, sittings = self.memories_for(claim)
            self._reached("extracted", claim)
            stage = "embed"
            with _timed(outcome.timings_ms, "embed"):
                vectors = self.embed(memories, sittings)
            stage = "upsert"
            with _timed(outcome.timings_ms, "upsert"):
                # Fence before writing points: a batch that lost its messages must not add any.
                self._store.fence(claim, self.policy.lease_seconds)
                self._vectors.delete_for_messages(claim.user_id, claim.character_name, claim.message_ids)
                self._vectors.upsert(memories, vectors)
            self._reached("upserted", claim)
            stage = "commit"
            outcome.episode_count = sum(m.type == EPISODE for m in memories)
            outcome.memory_count = len(memories) - outcome.episode_count
            self._reached("committing", claim)
            with _timed(outcome.timings_ms, "commit"):
                self._store.commit(claim, self._report(outcome, "succeeded"))
            outcome.status = "succeeded"
            self._monitor.succeeded("firestore", "qdrant", "embedder", "llm")
        except LeaseLostError as exc:
            outcome.status, outcome.error = "superseded", redact(str(exc))
            self._discard_points(claim)
            self._record(claim, outcome)
        except Exception as exc:  # the batch's boundary: whatever failed, the messages must stay unsynced
            outcome.error = redact(f"{stage}: {type(exc).__name__}: {exc}")
            self._monitor.failed(_component(exc, stage), outcome.error)
            self._fail(claim, outcome, points_unsafe=stage == "commit")
        log.info(
            "batch %s %s: %d messages, %d memories, %d episodes, %s%s",
            claim.batch_id,
            outcome.status,
            outcome.message_count,
            outcome.memory_count,
            outcome.episode_count,
            outcome.timings_ms,
            f", error: {outcome.error}" if outcome.error else "",
        )
        return outcome

    def _reached(self, stage: str, claim: Claim) -> None:
        if self.on_stage is not None:
            self.on_stage(stage, claim)

    def memories_for(self, claim: Claim) -> tuple[list[Memory], Sequence[Passage]]:
        """What a claimed batch stores: its extracted memories (checked, screened) and then its episodes,
        each with its point id; and the sittings its episodes are cut from, for the embedder."""
        conversation = Conversation(user_id=claim.user_id, character_name=claim.character_name, messages=claim.messages)
        drafts = self._extractor.extract(conversation)
        if not drafts:
            raise ExtractionError(f"the {self._extractor.name} extractor returned no memories")
        # What the guard drops is gone for good: the messages still sync, as retrying would drop it again.
        drafts = screen(drafts, conversation)
        known = {m.id: m for m in claim.messages}
        now = utcnow()
        memories = [self._memory(claim, i, d, known, now) for i, d in enumerate(drafts)]
        episodes = episodes_of(claim.messages, claim.character_name) if self.policy.episodes else []
        points = memories + [self._episode(claim, len(memories) + i, e, now) for i, e in enumerate(episodes)]
        return points, passages(episodes)

    def embed(self, memories: Sequence[Memory], sittings: Sequence[Passage]) -> list[list[float]]:
        """The vectors of `memories_for`'s points, in order: the extracted memories' texts, then the episodes
        read within their sittings (one pass over each sitting's turns, not one per episode)."""
        facts = [m.text for m in memories if m.type != EPISODE]
        vectors = self._embedder.embed(facts) + self._embedder.embed_spans(sittings)
        if len(vectors) != len(memories):
            raise EmbeddingError(f"{len(vectors)} vectors for {len(memories)} memories and episodes")
        return vectors

    @staticmethod
    def _memory(claim: Claim, index: int, draft: MemoryDraft, known: dict[str, Message], now: datetime) -> Memory:
        unknown = [mid for mid in draft.source_message_ids if mid not in known]
        if unknown:
            raise ExtractionError(f"a memory cites messages outside the batch: {unknown[:3]}")
        channels = Counter(known[mid].channel for mid in draft.source_message_ids)
        return _point(claim, index, now, channels.most_common(1)[0][0], **draft.model_dump())

    @staticmethod
    def _episode(claim: Claim, index: int, episode: EpisodeDraft, now: datetime) -> Memory:
        return _point(
            claim,
            index,
            now,
            episode.channel,
            text=episode.text,
            type=EPISODE,
            importance=0.5,
            source_message_ids=episode.source_message_ids,
            occurred_at=episode.messages[0].created_at,
        )

    def _fail(self, claim: Claim, outcome: BatchOutcome, *, points_unsafe: bool) -> None:
        # A commit that failed may still have applied; its points then back synced messages and must stay.
        # Otherwise they are orphans: remove them now, and the next claim removes any this misses.
        if not points_unsafe:
            self._discard_points(claim)
        try:
            self._store.release(claim, self._report(outcome, "failed"), self.policy.retry_after(claim.attempt))
        except RecallError as exc:
            log.warning("batch %s: could not release its claim (the lease expires on its own): %s", claim.batch_id, exc)

    def _record(self, claim: Claim, outcome: BatchOutcome) -> None:
        try:
            self._store.record(claim, self._report(outcome, outcome.status))
        except RecallError as exc:
            log.warning("batch %s: could not record its outcome: %s", claim.batch_id, exc)

    def _discard_points(self, claim: Claim) -> None:
        try:
            self._vectors.delete_batch(claim.user_id, claim.character_name, claim.batch_id)
        except RecallError as exc:
            log.warning("batch %s: orphan points left for the next claim to remove: %s", claim.batch_id, exc)

    def _report(self, outcome: BatchOutcome, status: str) -> BatchReport:
        return BatchReport(
            status=status,
            memory_count=outcome.memory_count,
            episode_count=outcome.episode_count,
            timings_ms=outcome.timings_ms,
            error=outcome.error,
            extractor=self._extractor.name,
        )


class _Chains:
    """The conversations this process runs batches for, and whether a trigger came for one meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], bool | None] = {}  # None: no trigger; else whether one forced

    def enter(self, key: tuple[str, str], force: bool) -> bool:
        """Hold `key` for the caller, or, if it is held, leave word for its holder and return False."""
        with self._lock:
            if key not in self._pending:
                self._pending[key] = None
                return True
            self._pending[key] = force or bool(self._pending[key])
            return False

    def leave(self, key: tuple[str, str]) -> bool | None:
        """Let go of `key` and return None, or, if a trigger came since the holder's last claim, keep holding
        it and return whether that trigger forced (the holder claims once more)."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                self._pending.pop(key, None)
                return None
            self._pending[key] = None
            return pending

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._pending.pop(key, None)


def _point(claim: Claim, index: int, now: datetime, channel: str, **content: Any) -> Memory:
    """A point of this batch: where it belongs, its deterministic id, and `content`."""
    return Memory(
        id=Memory.point_id(claim.batch_id, index),
        user_id=claim.user_id,
        character_name=claim.character_name,
        batch_id=claim.batch_id,
        created_at=now,
        channel=channel,
        **content,
    )


def _component(exc: Exception, stage: str) -> str:
    if isinstance(exc, DependencyError):
        return exc.component
    return {"extract": "llm", "embed": "embedder", "upsert": "qdrant", "commit": "firestore"}[stage]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round((time.perf_counter() - start) * 1000, 2)
