"""Messages and batch records in Firestore, the source of truth.

    users/{user_id}/characters/{character_name}/messages/{message_id}
        role, text, channel, created_at, sync, [batch_id, lease_expires_at while claimed]
    users/{user_id}/characters/{character_name}/batches/{batch_id}
        status (running|succeeded|failed), message_ids, memory_count, episode_count, timings_ms, error, ...

A batch claims messages in a transaction by writing its id and a lease on them; it commits (sync: true)
in another transaction that first checks every message still carries its id: a batch whose lease was
taken over cannot mark anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import bidi
from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.watch import Watch

from services.errors import ConflictError, InvalidInputError, LeaseLostError, MessageStoreError
from services.models import MESSAGE_MAX_CHARS, SPEAKER_MAX_CHARS, Message, Role, check_id

Clock = Callable[[], datetime]

# How many unsynced messages a claim looks at beyond its maximum, to step over ones another batch holds.
_CLAIM_LOOKAHEAD = 2
_CLAIM_ATTEMPTS = 12
RECONNECTS_PER_10S = 5

log = logging.getLogger(__name__)


class _Contended(MessageStoreError):
    """Every attempt of a transaction lost to a concurrent one."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Claim:
    """Messages a batch holds until `lease_expires_at`."""

    user_id: str
    character_name: str
    batch_id: str
    messages: list[Message]
    lease_expires_at: datetime
    forced: bool = False
    attempt: int = 1  # 1 + the most failed attempts any of its messages has seen

    @property
    def message_ids(self) -> list[str]:
        return [m.id for m in self.messages]


@dataclass
class BatchReport:
    """What a finished batch records next to its messages."""

    status: str
    memory_count: int = 0
    episode_count: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    extractor: str | None = None


class MessageStore:
    def __init__(self, client: firestore.Client, clock: Clock = utcnow) -> None:
        self._db = client
        self._clock = clock

    # -- paths ---------------------------------------------------------------------------------
    def conversation(self, user_id: str, character_name: str) -> firestore.DocumentReference:
        check_id(user_id, "user_id")
        check_id(character_name, "character_name")
        return self._db.collection("users").document(user_id).collection("characters").document(character_name)

    def _messages(self, user_id: str, character_name: str) -> firestore.CollectionReference:
        return self.conversation(user_id, character_name).collection("messages")

    def _batches(self, user_id: str, character_name: str) -> firestore.CollectionReference:
        return self.conversation(user_id, character_name).collection("batches")

    # -- messages ------------------------------------------------------------------------------
    def save_message(
        self,
        user_id: str,
        character_name: str,
        *,
        role: Role,
        text: str,
        channel: str = "whatsapp",
        created_at: datetime | None = None,
        message_id: str | None = None,
        speaker: str | None = None,
    ) -> Message:
        """Store one message with `sync: false`; a given `message_id` that exists is a ConflictError."""
        if role not in ("user", "assistant"):
            raise InvalidInputError(f"role must be 'user' or 'assistant', got {role!r}")
        if not text.strip() or len(text) > MESSAGE_MAX_CHARS:
            raise InvalidInputError(f"text must be 1-{MESSAGE_MAX_CHARS} characters and not blank")
        check_id(channel, "channel")
        if created_at is not None and created_at.utcoffset() is None:
            raise InvalidInputError("created_at must carry a time zone")
        if speaker is not None:
            check_id(speaker, "speaker")
            if len(speaker) > SPEAKER_MAX_CHARS or not speaker.strip():
                raise InvalidInputError(f"speaker must be 1-{SPEAKER_MAX_CHARS} characters and not blank")
        ref = self._messages(user_id, character_name)
        doc = ref.document(check_id(message_id, "message_id")) if message_id else ref.document()
        created = created_at or self._clock()
        data: dict[str, Any] = {"role": role, "text": text, "channel": channel, "created_at": created, "sync": False}
        if speaker is not None:
            data["speaker"] = speaker
        try:
            doc.create(data)
        except gexc.AlreadyExists as exc:
            raise ConflictError(f"message {doc.id!r} exists already") from exc
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not save the message: {exc}") from exc
        return Message(id=doc.id, user_id=user_id, character_name=character_name, **data)

    def count_unsynced(self, user_id: str, character_name: str) -> int:
        return self._count(self._messages(user_id, character_name).where(filter=FieldFilter("sync", "==", False)))

    def count_synced(self, user_id: str, character_name: str) -> int:
        return self._count(self._messages(user_id, character_name).where(filter=FieldFilter("sync", "==", True)))

    def _count(self, query: firestore.Query) -> int:
        aggregation: Any = query.count(alias="n")
        try:
            result = aggregation.get()
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not count messages: {exc}") from exc
        return int(result[0][0].value)

    def recent_unsynced(
        self, user_id: str, character_name: str, limit: int, timeout_s: float | None = None
    ) -> list[Message]:
        """The newest messages not yet in memory, oldest first.

        With `timeout_s` the read is one attempt bounded by it (the chat path cannot wait on retries).
        """
        if limit <= 0:
            return []
        bounded: dict[str, Any] = {"timeout": timeout_s, "retry": None} if timeout_s is not None else {}
        try:
            docs = list(self._recent_unsynced(user_id, character_name, limit).stream(**bounded))
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not read recent messages: {exc}") from exc
        return _oldest_first(user_id, character_name, docs)

    def watch_recent_unsynced(
        self, user_id: str, character_name: str, limit: int, on_change: Callable[[list[Message]], None]
    ) -> Watch:
        """Call `on_change` with what `recent_unsynced` would return, now and after every change to it.

        A Firestore listener: it runs on the SDK's thread until `unsubscribe()`; `is_active` turns false
        if it stops for good.
        """

        def on_snapshot(docs: list[firestore.DocumentSnapshot], _changes: object, _read_time: object) -> None:
            on_change(_oldest_first(user_id, character_name, docs))

        watch = self._recent_unsynced(user_id, character_name, limit).on_snapshot(on_snapshot)
        throttle_reconnects(watch)
        return watch

    def _recent_unsynced(self, user_id: str, character_name: str, limit: int) -> firestore.Query:
        return (
            self._messages(user_id, character_name)
            .where(filter=FieldFilter("sync", "==", False))
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )

    # -- batches -------------------------------------------------------------------------------
    def claim(
        self,
        user_id: str,
        character_name: str,
        *,
        batch_id: str,
        max_messages: int,
        min_messages: int,
        lease_seconds: float,
    ) -> Claim | None:
        """Claim the oldest unsynced messages that no live batch holds, or None if fewer than min_messages.

        Candidates come from a plain query; the transaction then reads and leases them by document. Reading
        the query inside the transaction would lock its whole range, and the chat's own message writes
        into the conversation would wait on every claim (and time out under load).
        """
        batch_ref = self._batches(user_id, character_name).document(batch_id)

        @firestore.transactional
        def claim_in(transaction: firestore.Transaction) -> Claim | None:
            # Listed afresh on every attempt: a retry after losing to another claim must not lock (and so
            # contend with the renew and commit of) the messages that claim has just leased.
            candidates = self._claimable(user_id, character_name, max_messages * _CLAIM_LOOKAHEAD)
            if len(candidates) < min_messages:
                return None
            now = self._clock()
            snaps = sorted(transaction.get_all(candidates), key=lambda d: (d.get("created_at"), d.id))
            free = [d for d in snaps if d.exists and not d.get("sync") and not _leased(d, now)][:max_messages]
            if len(free) < min_messages:
                return None
            expires = now + timedelta(seconds=lease_seconds)
            attempt = 1 + max(int((d.to_dict() or {}).get("attempts", 0)) for d in free)
            for doc in free:
                transaction.update(doc.reference, {"batch_id": batch_id, "lease_expires_at": expires})
            transaction.set(
                batch_ref,
                {
                    "status": "running",
                    "message_ids": [d.id for d in free],
                    "created_at": now,
                    "lease_expires_at": expires,
                    "forced": min_messages <= 1,
                    "attempt": attempt,
                },
            )
            messages_of = [_to_message(user_id, character_name, d) for d in free]
            return Claim(user_id, character_name, batch_id, messages_of, expires, min_messages <= 1, attempt)

        try:
            return self._run(claim_in, "claim messages", attempts=_CLAIM_ATTEMPTS)
        except _Contended:
            # Another claim kept winning the same messages; its chain takes whatever it leaves behind.
            log.info("claim for %s/%s lost to concurrent claims", user_id, character_name)
            return None

    def _claimable(self, user_id: str, character_name: str, limit: int) -> list[firestore.DocumentReference]:
        """The oldest unsynced messages with no live lease, as seen outside any transaction."""
        query = (
            self._messages(user_id, character_name)
            .where(filter=FieldFilter("sync", "==", False))
            .order_by("created_at")
            .limit(limit)
            .select(["lease_expires_at"])  # all it needs; the transaction reads the messages whole
        )
        now = self._clock()
        try:
            return [d.reference for d in query.stream() if not _leased(d, now)]
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not list claimable messages: {exc}") from exc

    def commit(self, claim: Claim, report: BatchReport) -> None:
        """Mark the claim's messages synced and record the batch, in one transaction fenced on the claim."""
        refs = self._refs(claim)
        batch_ref = self._batches(claim.user_id, claim.character_name).document(claim.batch_id)

        @firestore.transactional
        def commit_in(transaction: firestore.Transaction) -> None:
            _check_held(transaction.get_all(refs), claim)
            now = self._clock()
            for ref in refs:
                transaction.update(ref, {"sync": True, "synced_at": now, "lease_expires_at": firestore.DELETE_FIELD})
            transaction.set(batch_ref, _report_fields(report, now), merge=True)

        self._run(commit_in, "commit the batch")

    def fence(self, claim: Claim, lease_seconds: float) -> None:
        """Make sure the claim still holds its messages, before its batch writes points for them.

        No other batch can take a message while its lease runs (claims skip leased messages), so while at
        least half of `lease_seconds` is left by this store's clock the lease itself is the fence and nothing
        is read. With less left, `renew` checks the messages and extends the lease. The half-lease margin
        also stands for clock skew between processes: a lease is only as good as the clocks that read it.
        """
        if claim.lease_expires_at - self._clock() < timedelta(seconds=lease_seconds / 2):
            self.renew(claim, lease_seconds)

    def renew(self, claim: Claim, lease_seconds: float) -> None:
        """Extend the claim's lease, or raise LeaseLostError if another batch has taken its messages."""
        refs = self._refs(claim)

        @firestore.transactional
        def renew_in(transaction: firestore.Transaction) -> None:
            _check_held(transaction.get_all(refs), claim)
            expires = self._clock() + timedelta(seconds=lease_seconds)
            for ref in refs:
                transaction.update(ref, {"lease_expires_at": expires})
            claim.lease_expires_at = expires

        self._run(renew_in, "renew the lease")

    def release(self, claim: Claim, report: BatchReport, retry_after_s: float = 0.0) -> None:
        """Give a failed batch's messages back, still unsynced, and record why it failed.

        The messages count one more failed attempt and stay untouched for `retry_after_s`, so a dependency
        that is down is not hammered by every new trigger.
        """
        refs = self._refs(claim)
        batch_ref = self._batches(claim.user_id, claim.character_name).document(claim.batch_id)

        @firestore.transactional
        def release_in(transaction: firestore.Transaction) -> None:
            now = self._clock()
            held = [s.reference for s in transaction.get_all(refs) if _holds(s, claim)]
            for ref in held:
                transaction.update(
                    ref,
                    {"lease_expires_at": now + timedelta(seconds=retry_after_s), "attempts": firestore.Increment(1)},
                )
            transaction.set(batch_ref, {**_report_fields(report, now), "retry_after_s": retry_after_s}, merge=True)

        self._run(release_in, "release the batch")

    def record(self, claim: Claim, report: BatchReport) -> None:
        """Record a batch's outcome without touching its messages (a batch that lost them)."""
        batch_ref = self._batches(claim.user_id, claim.character_name).document(claim.batch_id)
        try:
            batch_ref.set(_report_fields(report, self._clock()), merge=True)
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not record batch {claim.batch_id}: {exc}") from exc

    def last_batch(self, user_id: str, character_name: str) -> dict[str, Any] | None:
        query = (
            self._batches(user_id, character_name).order_by("created_at", direction=firestore.Query.DESCENDING).limit(1)
        )
        try:
            docs = list(query.stream())
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not read batches: {exc}") from exc
        return {"batch_id": docs[0].id, **(docs[0].to_dict() or {})} if docs else None

    def get_batch(self, user_id: str, character_name: str, batch_id: str) -> dict[str, Any] | None:
        snap = self._batches(user_id, character_name).document(check_id(batch_id, "batch_id")).get()
        return {"batch_id": snap.id, **(snap.to_dict() or {})} if snap.exists else None

    def ping(self) -> None:
        try:
            self._db.collection("recall-health").document("ping").get(timeout=5)
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"Firestore did not answer: {exc}") from exc

    def _refs(self, claim: Claim) -> list[firestore.DocumentReference]:
        messages = self._messages(claim.user_id, claim.character_name)
        return [messages.document(mid) for mid in claim.message_ids]

    def _run(self, fn: Callable[[firestore.Transaction], Any], what: str, attempts: int = 5) -> Any:
        try:
            return fn(self._db.transaction(max_attempts=attempts))
        except (LeaseLostError, InvalidInputError):
            raise
        except ValueError as exc:
            # The SDK's way of saying every attempt was aborted by a conflicting transaction.
            if "Failed to commit transaction" in str(exc):
                raise _Contended(what) from exc
            raise MessageStoreError(f"could not {what}: {exc}") from exc
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not {what}: {exc}") from exc


def throttle_reconnects(watch: Watch) -> None:
    """Let a listener reopen its stream at most RECONNECTS_PER_10S times in 10 seconds.

    The SDK reopens a listener's stream at once after every recoverable error, with no backoff: against an
    unreachable Firestore one listener spun at 0.9 of a core, opening some 900 threads a second. api_core has
    the throttle; Firestore's Watch does not turn it on.
    """
    rpc = getattr(watch, "_rpc", None)
    if rpc is not None and hasattr(rpc, "_reopen_throttle"):
        rpc._reopen_throttle = bidi._Throttle(access_limit=RECONNECTS_PER_10S, time_window=timedelta(seconds=10))


def _oldest_first(user_id: str, character_name: str, docs: Iterable[firestore.DocumentSnapshot]) -> list[Message]:
    # The query orders newest first (ties by name); a listener's snapshot comes in its own order.
    return sorted((_to_message(user_id, character_name, d) for d in docs), key=lambda m: (m.created_at, m.id))


def _to_message(user_id: str, character_name: str, doc: firestore.DocumentSnapshot) -> Message:
    data = doc.to_dict() or {}
    return Message(
        id=doc.id,
        user_id=user_id,
        character_name=character_name,
        role=data["role"],
        text=data["text"],
        channel=data.get("channel", "unknown"),
        created_at=data["created_at"],
        sync=bool(data.get("sync")),
        speaker=data.get("speaker") if isinstance(data.get("speaker"), str) else None,
    )


def _leased(doc: firestore.DocumentSnapshot, now: datetime) -> bool:
    expires = (doc.to_dict() or {}).get("lease_expires_at")
    return expires is not None and expires > now


def _holds(snap: firestore.DocumentSnapshot, claim: Claim) -> bool:
    data = snap.to_dict() or {}
    return snap.exists and data.get("batch_id") == claim.batch_id and not data.get("sync")


def _check_held(snaps: Iterable[firestore.DocumentSnapshot], claim: Claim) -> None:
    lost = [s.id for s in snaps if not _holds(s, claim)]
    if lost:
        raise LeaseLostError(f"batch {claim.batch_id} no longer holds {len(lost)} of its messages")


def _report_fields(report: BatchReport, now: datetime) -> dict[str, Any]:
    return {
        "status": report.status,
        "memory_count": report.memory_count,
        "episode_count": report.episode_count,
        "timings_ms": report.timings_ms,
        "error": report.error,
        "extractor": report.extractor,
        "finished_at": now,
    }
