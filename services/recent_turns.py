"""The recent turns not yet in memory, for the context service: read once, then kept by a listener.

Every context call needs the conversation's newest unsynced turns. Read from Firestore, they put a round
trip on the chat's critical path, the slowest step of the call (on the emulator a query scans every
document it holds). A conversation being talked in asks for context at every turn, so its first call reads
and then, on a thread of its own, starts a Firestore listener on the same query; later calls take the
listener's current view and make no round trip. The view follows writes within milliseconds (the turn being
answered comes with the call as `current_message` anyway). Each listener holds two of the SDK's threads
and a stream; `relax_grpc_waits` keeps those threads from waking ten times a second each.

Listeners are kept for the `capacity` conversations used most recently and closed once `idle_s` passed
without a call (checked at each call). Each is a stream on the Firestore client's connection, where
Google's front ends allow 100 at once; past that every call of the client would wait, hence a small cap.
A view is served only once the listener has delivered it and while the listener runs; otherwise the call
reads, as the first one did. A listener that stopped for good is replaced, at most every RETRY_S.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from google.cloud.firestore_v1.watch import Watch
from grpc import _common as grpc_common

from services.errors import MessageStoreError
from services.message_store import MessageStore
from services.models import Message, check_id

log = logging.getLogger(__name__)

ConversationKey = tuple[str, str]
RETRY_S = 30.0
# gRPC wakes every thread blocked on a stream this often (grpc._common.MAXIMUM_WAIT_TIMEOUT, 0.1 s by default)
# only to notice Ctrl-C; each listener holds such a thread, and 400 of them waking ten times a second took the
# query embedding's p95 from 7 to 11 ms. A wake-up is not a delivery: messages still arrive at once.
GRPC_WAIT_SLICE_S = 1.0


def relax_grpc_waits() -> None:
    """Let threads blocked on gRPC streams sleep GRPC_WAIT_SLICE_S between checks (process-wide, idempotent)."""
    if getattr(grpc_common, "MAXIMUM_WAIT_TIMEOUT", GRPC_WAIT_SLICE_S) < GRPC_WAIT_SLICE_S:
        grpc_common.MAXIMUM_WAIT_TIMEOUT = GRPC_WAIT_SLICE_S


@dataclass(eq=False)
class _Listened:
    opened: float
    used: float
    watch: Watch | None = None
    turns: list[Message] | None = None
    started: bool = False
    failed: bool = False

    def running(self) -> bool:
        return self.watch is not None and self.watch.is_active

    def stopped(self) -> bool:
        return self.failed or (self.watch is not None and not self.running())

    def view(self) -> list[Message] | None:
        return self.turns if self.running() else None

    def close(self) -> None:
        if self.watch is not None:
            self.watch.unsubscribe()


def _key(user_id: str, character_name: str) -> ConversationKey:
    return check_id(user_id, "user_id"), check_id(character_name, "character_name")


class RecentTurns:
    def __init__(
        self,
        store: MessageStore,
        limit: int,
        capacity: int = 64,
        idle_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._limit = limit
        self._capacity = capacity
        self._idle_s = idle_s
        self._clock = clock
        self._listened: OrderedDict[ConversationKey, _Listened] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        if capacity > 0:
            relax_grpc_waits()
        # Listeners open on a thread of their own, so no call waits for one.
        self._opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recall-recent-turns")

    def get(self, user_id: str, character_name: str, timeout_s: float | None = None) -> list[Message]:
        """The newest `limit` unsynced turns, oldest first: the listener's view, or a read bounded by `timeout_s`."""
        view = self.view(user_id, character_name)
        return view if view is not None else self.read(user_id, character_name, timeout_s)

    def view(self, user_id: str, character_name: str) -> list[Message] | None:
        """The listener's current view of the conversation, or None: then `read` it."""
        if self._limit <= 0:
            return []
        listened = self._touch(_key(user_id, character_name), start=False)
        view = listened.view() if listened is not None else None
        return list(view) if view is not None else None

    def read(self, user_id: str, character_name: str, timeout_s: float | None = None) -> list[Message]:
        """Read from Firestore, then, if the read worked, open the conversation's listener if it has none (on the
        opener's thread, off the call's path)."""
        key = _key(user_id, character_name)
        try:
            turns = self._store.recent_unsynced(*key, self._limit, timeout_s)
        except MessageStoreError:
            self._touch(key, start=False)  # Firestore is not answering: no listener to keep reconnecting
            raise
        self._touch(key, start=True)
        return turns

    def open(self, user_id: str, character_name: str) -> None:
        """Start listening to a conversation before its first context call (a voice call connecting)."""
        if self._limit > 0:
            self._touch(_key(user_id, character_name), start=True)

    def is_live(self, user_id: str, character_name: str) -> bool:
        """Whether the next call for this conversation is served without a read."""
        with self._lock:
            listened = self._listened.get((user_id, character_name))
        return listened is not None and listened.view() is not None

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def listening(self) -> int:
        return len(self._listened)

    def clear(self) -> None:
        """Close every listener; the next call of each conversation reads again."""
        with self._lock:
            dropped = list(self._listened.values())
            self._listened.clear()
        self._close(dropped)

    def close(self) -> None:
        """Close every listener and open no more (calls still in flight read)."""
        with self._lock:
            self._closed = True
        self._opener.shutdown(wait=True, cancel_futures=True)
        self.clear()

    def _touch(self, key: ConversationKey, start: bool) -> _Listened | None:
        if self._capacity <= 0:
            return None
        now = self._clock()
        dropped = []
        with self._lock:
            if self._closed:
                return None
            listened = self._listened.get(key)
            if listened is not None and listened.stopped() and now - listened.opened >= RETRY_S:
                dropped.append(self._listened.pop(key))
                listened = None
            if listened is None:
                listened = self._listened[key] = _Listened(opened=now, used=now)
            else:
                listened.used = now
                self._listened.move_to_end(key)
            begin = start and not listened.started
            listened.started |= start
            dropped += self._evict(now)
        if dropped:  # closing waits up to a second for a stuck listener's thread: not on the call's
            self._opener.submit(self._close, dropped)
        if begin:
            self._opener.submit(self._start, key, listened)
        return listened

    def _start(self, key: ConversationKey, listened: _Listened) -> None:
        def on_change(turns: list[Message]) -> None:
            listened.turns = turns

        try:
            listened.watch = self._store.watch_recent_unsynced(*key, self._limit, on_change)
        except Exception as exc:  # calls go on reading; a new listener is tried after RETRY_S
            log.warning("could not listen to recent turns of %s/%s: %s", *key, exc)
            listened.failed = True
            return
        with self._lock:
            dropped = self._listened.get(key) is not listened  # evicted or cleared meanwhile
        if dropped:
            self._close([listened])

    def _evict(self, now: float) -> list[_Listened]:
        dropped = []
        while self._listened:
            key, oldest = next(iter(self._listened.items()))
            if len(self._listened) <= self._capacity and now - oldest.used < self._idle_s:
                break
            dropped.append(self._listened.pop(key))
        return dropped

    @staticmethod
    def _close(dropped: list[_Listened]) -> None:
        for listened in dropped:
            try:
                listened.close()
            except Exception as exc:  # closing is best effort: the SDK re-raises the reason a listener stopped
                log.debug("closing a recent-turns listener: %s", exc)
