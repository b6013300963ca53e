"""The idle sweep: conversations that stay below the threshold are flushed once they have been quiet.

Run by a scheduler (`POST /memory/sweep`, e.g. Cloud Scheduler), by `scripts/sweep.py`, or periodically
inside the API process under `make run`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from services.batch_processor import BatchOutcome, BatchProcessor
from services.errors import RecallError
from services.message_listener import conversation_of
from services.message_store import Clock, MessageStore, utcnow

log = logging.getLogger(__name__)

# One sweep looks at this many of the oldest quiet unsynced messages; a backlog takes several sweeps.
SCAN_LIMIT = 2000


@dataclass
class SweepReport:
    scanned_messages: int = 0
    quiet_conversations: int = 0
    batches: list[str] = field(default_factory=list)
    outcomes: list[BatchOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Sweeper:
    def __init__(
        self,
        client: firestore.Client,
        store: MessageStore,
        processor: BatchProcessor,
        quiet_seconds: float,
        clock: Clock = utcnow,
    ) -> None:
        self._client = client
        self._store = store
        self._processor = processor
        self.quiet_seconds = quiet_seconds
        self._clock = clock

    def sweep(self, *, wait: bool = False) -> SweepReport:
        """Flush every conversation whose newest unsynced message is older than the quiet period.

        With `wait` the batches run here and their outcomes are reported; otherwise they run in the
        background, as a trigger's do.
        """
        cutoff = self._clock() - timedelta(seconds=self.quiet_seconds)
        query = (
            self._client.collection_group("messages")
            .where(filter=FieldFilter("sync", "==", False))
            .where(filter=FieldFilter("created_at", "<=", cutoff))
            .order_by("created_at")
            .limit(SCAN_LIMIT)
        )
        report = SweepReport()
        keys: set[tuple[str, str]] = set()
        for doc in query.stream():
            report.scanned_messages += 1
            if (key := conversation_of(doc.reference.path)) is not None:
                keys.add(key)
        for user_id, character_name in sorted(keys):
            try:
                self._flush_if_quiet(user_id, character_name, cutoff, wait, report)
            except RecallError as exc:
                report.errors.append(f"{user_id}/{character_name}: {exc}")
        log.info("sweep: %d quiet conversations, %d batches", report.quiet_conversations, len(report.batches))
        return report

    def _flush_if_quiet(
        self, user_id: str, character_name: str, cutoff: datetime, wait: bool, report: SweepReport
    ) -> None:
        newest = self._store.recent_unsynced(user_id, character_name, 1)
        if not newest or newest[0].created_at > cutoff:
            return  # still talking: the threshold or a later sweep takes it
        report.quiet_conversations += 1
        if wait:
            outcomes = self._processor.run_chain(self._processor.claim(user_id, character_name, force=True))
            report.outcomes += outcomes
            report.batches += [o.batch_id for o in outcomes]
        else:
            result = self._processor.trigger(user_id, character_name, force=True)
            if result.batch_id:
                report.batches.append(result.batch_id)


class PeriodicSweep:
    """Runs a sweep every `interval_s` on a daemon thread until stopped."""

    def __init__(self, sweeper: Sweeper, interval_s: float) -> None:
        self._sweeper = sweeper
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recall-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._sweeper.sweep()
            except Exception:  # the loop must outlive one bad sweep; the next one retries
                log.exception("periodic sweep failed")
