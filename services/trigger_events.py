"""Event ids the trigger has acted on, so that a redelivered event starts nothing new.

    trigger_events/{sha256(event_id)}   event_id, received_at, expires_at

Cloud Functions deliver each event at least once. The first delivery creates the record (`create()`
fails if it exists, atomically, so two concurrent deliveries cannot both win); a repeat finds it. A TTL
policy on `expires_at` lets Firestore delete old records (see the README).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from services.errors import MessageStoreError
from services.message_store import Clock, utcnow

T = TypeVar("T")

log = logging.getLogger(__name__)

COLLECTION = "trigger_events"
# Far longer than any redelivery: the function drops events older than an hour.
RETENTION = timedelta(days=7)


class TriggerEvents:
    """Records delivered event ids in Firestore and runs an action once per id."""

    def __init__(self, client: firestore.Client, clock: Clock = utcnow, retention: timedelta = RETENTION) -> None:
        self._db = client
        self._clock = clock
        self._retention = retention

    def once(self, event_id: str, action: Callable[[], T]) -> T | None:
        """Run `action` for the first delivery of `event_id` and return its result; None for a repeat.

        If the action fails the record is removed again, so the platform's retry of the event runs it.
        """
        ref = self._ref(event_id)
        now = self._clock()
        try:
            ref.create({"event_id": event_id, "received_at": now, "expires_at": now + self._retention})
        except gexc.AlreadyExists:
            return None
        except gexc.GoogleAPIError as exc:
            raise MessageStoreError(f"could not record trigger event: {exc}") from exc
        try:
            return action()
        except Exception:
            self._forget(ref)
            raise

    def _ref(self, event_id: str) -> firestore.DocumentReference:
        # Event ids are the caller's strings: hashed, they are always one valid document id.
        return self._db.collection(COLLECTION).document(hashlib.sha256(event_id.encode()).hexdigest())

    def _forget(self, ref: firestore.DocumentReference) -> None:
        try:
            ref.delete()
        except gexc.GoogleAPIError as exc:
            # The retry will be taken for a repeat; the next message's trigger still counts everything.
            log.warning("could not remove trigger event %s after a failure: %s", ref.id, exc)
