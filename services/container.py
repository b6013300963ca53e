"""Builds Recall's clients and services from settings, in one place, and closes them.

The API's lifespan owns one container; scripts build their own. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from services import redact
from services.batch_processor import BatchPolicy, BatchProcessor
from services.config import Settings, get_settings
from services.context_format import ContextBudget
from services.embedder import Embedder, build_embedder, check_vector_size
from services.extractor import Extractor, build_extractor
from services.health import ComponentMonitor
from services.memory_integration import MemoryIntegration
from services.message_store import MessageStore
from services.recent_turns import RecentTurns
from services.sweeper import Sweeper
from services.trigger_events import TriggerEvents
from services.vector_store import VectorStore, build_vector_store

log = logging.getLogger(__name__)


def build_firestore_client(settings: Settings) -> firestore.Client:
    """The emulator (anonymous credentials) when FIRESTORE_EMULATOR_HOST is set, else real Firestore (ADC)."""
    if settings.firestore_emulator_host:
        # The SDK reads the emulator address from the environment, not from its arguments.
        os.environ["FIRESTORE_EMULATOR_HOST"] = settings.firestore_emulator_host
        return firestore.Client(project=settings.google_cloud_project, credentials=AnonymousCredentials())
    return firestore.Client(project=settings.google_cloud_project)


@dataclass
class Container:
    settings: Settings
    firestore: firestore.Client
    store: MessageStore
    embedder: Embedder
    vectors: VectorStore
    extractor: Extractor
    executor: ThreadPoolExecutor
    processor: BatchProcessor
    integration: MemoryIntegration
    monitor: ComponentMonitor
    sweeper: Sweeper
    trigger_events: TriggerEvents

    @classmethod
    def build(
        cls, settings: Settings, *, embedder: Embedder | None = None, extractor: Extractor | None = None
    ) -> Container:
        """Everything from settings; a ready embedder or extractor may be handed in (tests share one model)."""
        redact.register(*settings.secret_values())
        redact.install()
        client = build_firestore_client(settings)
        store = MessageStore(client)
        embedder = embedder or build_embedder(settings)
        check_vector_size(settings, embedder)
        vectors = build_vector_store(settings, embedder.dimension)
        vectors.ensure_ready()
        extractor = extractor or build_extractor(settings)
        executor = ThreadPoolExecutor(max_workers=settings.batch_workers, thread_name_prefix="recall-batch")
        policy = BatchPolicy(
            settings.batch_threshold,
            settings.batch_max_messages,
            settings.batch_lease_seconds,
            settings.batch_retry_base_seconds,
            settings.batch_retry_max_seconds,
            settings.episodes_enabled,
        )
        monitor = ComponentMonitor()
        processor = BatchProcessor(store, extractor, embedder, vectors, policy, executor, monitor)
        budget = ContextBudget(
            token_budget=settings.context_token_budget,
            memory_limit=settings.context_memory_limit,
            episode_limit=settings.context_episode_limit,
            episode_share=settings.context_episode_share,
            recent_turns=settings.context_recent_turns,
            min_score=settings.context_min_score,
            encoding=settings.tiktoken_encoding,
        )
        recent_turns = RecentTurns(
            store, budget.recent_turns, settings.context_live_conversations, settings.context_live_idle_seconds
        )
        integration = MemoryIntegration(
            store, embedder, vectors, budget, settings.context_timeout_ms / 1000, recent_turns
        )
        integration.warm_up()
        log.info(
            "recall ready: firestore=%s qdrant=%s embedder=%s extractor=%s",
            settings.firestore_emulator_host or "cloud",
            vectors.backend,
            embedder.name,
            extractor.name,
        )
        sweeper = Sweeper(client, store, processor, settings.idle_flush_seconds)
        return cls(
            settings,
            client,
            store,
            embedder,
            vectors,
            extractor,
            executor,
            processor,
            integration,
            monitor,
            sweeper,
            TriggerEvents(client),
        )

    def close(self) -> None:
        # Batches already running finish (their leases would otherwise block the messages for a while);
        # queued ones are dropped and their leases simply expire.
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.integration.close()
        self.vectors.close()
        self.firestore.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_container: Container | None = None
_lock = threading.Lock()


def get_container() -> Container:
    """The process's container, built on first use from the environment."""
    global _container
    with _lock:
        if _container is None:
            _container = Container.build(get_settings())
        return _container


def set_container(container: Container | None) -> None:
    global _container
    with _lock:
        _container = container
