"""The local trigger: an `on_snapshot` listener that fires the batch trigger for new messages.

In production the Cloud Function in `functions/` does this job; both call the same trigger. The listener
watches only the newest LISTEN_WINDOW messages: a watch on every unsynced message keeps (and re-sorts) the
whole backlog in this process, which took most of the API's CPU under a burst of 10k writes. Conversations
it does not see, such as a backlog from before a restart, are taken by their next message or by the sweep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.cloud import firestore

from services.errors import RecallError
from services.message_store import throttle_reconnects

log = logging.getLogger(__name__)

ConversationKey = tuple[str, str]
LISTEN_WINDOW = 500


def conversation_of(path: str) -> ConversationKey | None:
    """(user_id, character_name) of a message path, or None for a `messages` document elsewhere."""
    parts = path.split("/")
    if len(parts) == 6 and parts[0] == "users" and parts[2] == "characters" and parts[4] == "messages":
        return parts[1], parts[3]
    return None


class MessageListener:
    def __init__(self, client: firestore.Client, trigger: Callable[[str, str], object]) -> None:
        self._client = client
        self._trigger = trigger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recall-listener")
        self._pending: set[ConversationKey] = set()
        self._lock = threading.Lock()
        self._watch: Any = None

    def start(self) -> None:
        query = (
            self._client.collection_group("messages")
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .limit(LISTEN_WINDOW)
        )
        self._watch = query.on_snapshot(self._on_snapshot)
        throttle_reconnects(self._watch)

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.unsubscribe()
            self._watch = None
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _on_snapshot(self, _docs: Sequence[Any], changes: Sequence[Any], _read_time: Any) -> None:
        # Runs on the SDK's watch thread: hand off at once. A burst of writes to one conversation
        # coalesces into one pending trigger.
        paths = [
            c.document.reference.path
            for c in changes
            if c.type.name == "ADDED" and (c.document.to_dict() or {}).get("sync") is False
        ]
        for key in {key for path in paths if (key := conversation_of(path)) is not None}:
            self._schedule(key)

    def _schedule(self, key: ConversationKey) -> None:
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        self._executor.submit(self._fire, key)

    def _fire(self, key: ConversationKey) -> None:
        with self._lock:
            self._pending.discard(key)
        try:
            self._trigger(*key)
        except RecallError as exc:
            log.warning("listener trigger for %s/%s failed; the next message retries: %s", *key, exc)
        except Exception:  # the listener thread must survive anything one trigger does
            log.exception("listener trigger for %s/%s crashed", *key)
