"""The context service: memories relevant to the current message, for voice and WhatsApp handlers.

    from services.memory_integration import memory_integration

    context = await memory_integration.get_conversation_context(
        user_id="u1", character_name="meher", current_message="how was my week?")
    prompt = await memory_integration.enhance_system_prompt(
        user_id="u1", character_name="meher", current_message=text, base_system_prompt=BASE)

Chat never waits on memory: each call has a time budget (CONTEXT_TIMEOUT_MS) and on timeout or any
failure returns an empty context, so `enhance_system_prompt` gives back the base prompt unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from services.context_format import ContextBudget, render_context
from services.embedder import Embedder
from services.message_store import MessageStore
from services.models import MemoryHit, Message, check_id
from services.recent_turns import RecentTurns
from services.tokens import count_tokens
from services.vector_store import SearchKind, VectorStore

log = logging.getLogger(__name__)

# Episodes sharing this many quoted turns with a better one are dropped from the context.
_OVERLAP = 2


@dataclass
class ConversationContext:
    user_id: str
    character_name: str
    channel: str
    memories: list[MemoryHit] = field(default_factory=list)
    recent_turns: list[Message] = field(default_factory=list)
    text: str = ""
    tokens: int = 0
    elapsed_ms: float = 0.0
    degraded: bool = False
    reason: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.text


class MemoryIntegration:
    def __init__(
        self,
        store: MessageStore,
        embedder: Embedder,
        vectors: VectorStore,
        budget: ContextBudget,
        timeout_s: float,
        recent_turns: RecentTurns | None = None,
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self.budget = budget
        self.timeout_s = timeout_s
        self.recent_turns = recent_turns or RecentTurns(store, budget.recent_turns)
        # Context work runs on pools of its own, never the event loop's default executor, so a dependency
        # that hangs cannot starve the loop's other users or hold up its shutdown. Recent turns are read
        # (when no listener holds them) while the query is embedded and searched.
        self._calls = ThreadPoolExecutor(max_workers=8, thread_name_prefix="recall-context")
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="recall-context-read")

    async def get_conversation_context(
        self, *, user_id: str, character_name: str, current_message: str, channel: str = "whatsapp"
    ) -> ConversationContext:
        """Relevant memories and recent unsynced turns, rendered for `channel`, within the time budget."""
        start = time.perf_counter()
        try:
            context = await asyncio.wait_for(
                asyncio.get_running_loop().run_in_executor(
                    self._calls, self.build_context, user_id, character_name, current_message, channel
                ),
                timeout=self.timeout_s,
            )
        except TimeoutError:
            context = self._degraded(user_id, character_name, channel, f"timed out after {self.timeout_s:.3f}s")
        except Exception as exc:  # memory must never break the chat: any failure degrades to no memories
            context = self._degraded(user_id, character_name, channel, f"{type(exc).__name__}: {exc}")
        context.elapsed_ms = round((time.perf_counter() - start) * 1000, 2)
        return context

    async def enhance_system_prompt(
        self,
        *,
        user_id: str,
        character_name: str,
        current_message: str,
        base_system_prompt: str,
        channel: str = "whatsapp",
    ) -> str:
        """The base prompt followed by the memory context, or the base prompt unchanged if there is none."""
        context = await self.get_conversation_context(
            user_id=user_id, character_name=character_name, current_message=current_message, channel=channel
        )
        return compose_prompt(base_system_prompt, context)

    def build_context(
        self, user_id: str, character_name: str, current_message: str, channel: str
    ) -> ConversationContext:
        """The synchronous core, without the time budget (benchmarks and tests call it directly)."""
        # No id check here: recent_turns.view and search() check both before any I/O.
        listened = self.recent_turns.view(user_id, character_name)
        reading = None
        if listened is None:
            reading = self._reads.submit(self.recent_turns.read, user_id, character_name, self.timeout_s)
        hits = self.ranked(user_id, character_name, current_message, channel)
        recent = reading.result() if reading is not None else listened or []
        text, tokens, used_hits, used_turns = render_context(hits, recent, channel, self.budget)
        return ConversationContext(user_id, character_name, channel, used_hits, used_turns, text, tokens)

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._reads.shutdown(wait=False, cancel_futures=True)
        self.recent_turns.close()

    def warm_up(self) -> None:
        """Load the tokenizer and run one embedding now, so the first chat message is not the slow one."""
        count_tokens("warm up", self.budget.encoding)
        self._embedder.embed_query("warm up")

    def search(
        self,
        user_id: str,
        character_name: str,
        query: str,
        limit: int,
        min_score: float | None = None,
        kind: SearchKind = "all",
    ) -> list[MemoryHit]:
        """Memories (and episodes, unless `kind` says otherwise) of this user and character nearest to
        `query`, best first."""
        vector = self._query_vector(user_id, character_name, query)
        return self._vectors.search(user_id, character_name, vector, limit, min_score, kind) if vector else []

    def ranked(self, user_id: str, character_name: str, query: str, channel: str) -> list[MemoryHit]:
        """What the context for `query` is filled from, in order (see `arrange`)."""
        vector = self._query_vector(user_id, character_name, query)
        if not vector:
            return []
        episodes, memories = self.candidates(user_id, character_name, vector, channel)
        return arrange(episodes, memories, self.budget)

    def candidates(
        self, user_id: str, character_name: str, vector: list[float], channel: str
    ) -> tuple[list[MemoryHit], list[MemoryHit]]:
        """The episodes and the extracted memories nearest to `vector`, each best first (voice: no episodes)."""
        budget = self.budget
        search = self._vectors.search
        memories = search(user_id, character_name, vector, budget.memory_limit, budget.min_score, "memories")
        if channel == "voice" or budget.episode_limit == 0:
            return [], memories
        # Neighbouring episodes quote two of the same three turns; twice as many leaves room to drop them.
        limit = 2 * budget.episode_limit
        episodes = search(user_id, character_name, vector, limit, budget.min_score, "episodes")
        return episodes, memories

    def _query_vector(self, user_id: str, character_name: str, query: str) -> list[float]:
        check_id(user_id, "user_id")
        check_id(character_name, "character_name")
        return self._embedder.embed_query(query) if query.strip() else []

    @staticmethod
    def _degraded(user_id: str, character_name: str, channel: str, reason: str) -> ConversationContext:
        log.warning("context for %s/%s degraded to no memories: %s", user_id, character_name, reason)
        return ConversationContext(user_id, character_name, channel, degraded=True, reason=reason)


def arrange(episodes: list[MemoryHit], memories: list[MemoryHit], budget: ContextBudget) -> list[MemoryHit]:
    """What the context service found, best first: the episodes, then the extracted memories.

    An episode that quotes two turns already quoted by a better one adds one new turn for three turns'
    tokens, so it is dropped. `render_context` decides what of this fits the prompt.
    """
    return [*_distinct(episodes)[: budget.episode_limit], *memories]


def _distinct(episodes: list[MemoryHit]) -> list[MemoryHit]:
    kept: list[MemoryHit] = []
    quoted: set[str] = set()
    for hit in episodes:
        turns = set(hit.memory.source_message_ids)
        if len(turns & quoted) < _OVERLAP:
            kept.append(hit)
            quoted |= turns
    return kept


def compose_prompt(base_system_prompt: str, context: ConversationContext) -> str:
    if context.is_empty:
        return base_system_prompt
    return f"{base_system_prompt.rstrip()}\n\n{context.text}"


class _LazyMemoryIntegration:
    """`memory_integration` as the guide imports it: built on first use, from the process's container."""

    def __init__(self, factory: Callable[[], MemoryIntegration]) -> None:
        self._factory = factory

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory(), name)


def _from_container() -> MemoryIntegration:
    from services.container import get_container

    return get_container().integration


memory_integration: Any = _LazyMemoryIntegration(_from_container)
