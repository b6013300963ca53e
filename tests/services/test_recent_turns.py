from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore
from grpc import _common as grpc_common

from scripts.firestore_emulator import free_port
from services.container import build_firestore_client
from services.errors import InvalidInputError, MessageStoreError
from services.message_listener import MessageListener
from services.message_store import BatchReport, MessageStore
from services.models import Message
from services.recent_turns import GRPC_WAIT_SLICE_S, RETRY_S, RecentTurns
from tests.conftest import make_settings
from tests.support.chat import T0, filler_turns, save_turns, wait_until

CHAR = "meher"


class CountingStore(MessageStore):
    """The real store, counting the recent-turns reads that reach Firestore."""

    reads = 0

    def recent_unsynced(self, *args: Any, **kwargs: Any) -> list[Message]:
        self.reads += 1
        return super().recent_unsynced(*args, **kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ids(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


def test_first_call_reads_then_the_listener_serves_every_change(
    firestore_client: firestore.Client, user_id: str
) -> None:
    store = CountingStore(firestore_client)
    saved = save_turns(store, user_id, CHAR, filler_turns(5))
    turns = RecentTurns(store, limit=3)
    try:
        assert ids(turns.get(user_id, CHAR)) == ids(saved[2:])
        assert store.reads == 1
        wait_until(lambda: turns.is_live(user_id, CHAR), "the listener's first view")
        assert ids(turns.get(user_id, CHAR)) == ids(saved[2:])

        later = save_turns(store, user_id, CHAR, [("user", "and one more thing")], start=T0 + timedelta(hours=1))
        wait_until(lambda: ids(turns.get(user_id, CHAR)) == ids(saved[3:] + later), "the new turn in the view")

        claim = store.claim(user_id, CHAR, batch_id="b1", max_messages=4, min_messages=4, lease_seconds=60)
        assert claim is not None
        store.commit(claim, BatchReport(status="succeeded"))
        wait_until(lambda: ids(turns.get(user_id, CHAR)) == ids(saved[4:] + later), "synced turns gone")
        assert store.reads == 1
        assert ids(turns.get(user_id, CHAR)) == ids(store.recent_unsynced(user_id, CHAR, 3))
    finally:
        turns.close()


def test_views_hold_one_conversation_each(firestore_client: firestore.Client, user_id: str) -> None:
    store = MessageStore(firestore_client)
    other_user = f"{user_id}-other"
    mine = save_turns(store, user_id, CHAR, filler_turns(2, "my garden"))
    theirs = save_turns(store, other_user, CHAR, filler_turns(2, "their boat"))
    other_character = save_turns(store, user_id, "arjun", filler_turns(2, "my other friend"))
    turns = RecentTurns(store, limit=8)
    conversations = [(user_id, CHAR), (other_user, CHAR), (user_id, "arjun")]
    try:
        for conversation in conversations:
            turns.open(*conversation)
        wait_until(lambda: all(turns.is_live(*c) for c in conversations), "three live views")
        for conversation, saved in zip(conversations, (mine, theirs, other_character), strict=True):
            view = turns.get(*conversation)
            assert ids(view) == ids(saved)
            assert {(m.user_id, m.character_name) for m in view} == {conversation}
    finally:
        turns.close()


def test_listeners_are_kept_for_the_conversations_used_last(firestore_client: firestore.Client, user_id: str) -> None:
    store = MessageStore(firestore_client)
    clock = Clock()
    turns = RecentTurns(store, limit=3, capacity=2, idle_s=60, clock=clock)
    users = [f"{user_id}-{i}" for i in range(4)]
    try:
        for user in users[:3]:
            save_turns(store, user, CHAR, filler_turns(1))
            turns.get(user, CHAR)
            clock.now += 1
        assert turns.listening == 2
        wait_until(lambda: turns.is_live(users[1], CHAR) and turns.is_live(users[2], CHAR), "two live views")
        assert not turns.is_live(users[0], CHAR)

        clock.now += 61
        turns.open(users[3], CHAR)
        assert turns.listening == 1
        assert not turns.is_live(users[1], CHAR) and not turns.is_live(users[2], CHAR)
    finally:
        turns.close()
    assert turns.listening == 0


def test_without_listeners_every_call_reads(firestore_client: firestore.Client, user_id: str) -> None:
    store = CountingStore(firestore_client)
    saved = save_turns(store, user_id, CHAR, filler_turns(3))
    turns = RecentTurns(store, limit=8, capacity=0)
    for calls in range(1, 4):
        assert ids(turns.get(user_id, CHAR)) == ids(saved)
        assert store.reads == calls
    assert turns.listening == 0 and not turns.is_live(user_id, CHAR)


def test_a_stopped_listener_is_never_served_and_is_replaced(firestore_client: firestore.Client, user_id: str) -> None:
    store = CountingStore(firestore_client)
    saved = save_turns(store, user_id, CHAR, filler_turns(2))
    clock = Clock()
    turns = RecentTurns(store, limit=8, clock=clock)
    try:
        turns.open(user_id, CHAR)
        wait_until(lambda: turns.is_live(user_id, CHAR), "the listener's first view")
        turns._listened[(user_id, CHAR)].close()  # as if it had stopped for good
        later = save_turns(store, user_id, CHAR, [("user", "written while no one listens")], start=T0 + timedelta(1))

        assert ids(turns.get(user_id, CHAR)) == ids(saved + later)  # a read, not the stopped view
        assert store.reads == 1 and not turns.is_live(user_id, CHAR)
        clock.now += RETRY_S
        turns.get(user_id, CHAR)
        wait_until(lambda: turns.is_live(user_id, CHAR), "a new listener's view")
        assert ids(turns.get(user_id, CHAR)) == ids(saved + later)
        assert store.reads == 2
    finally:
        turns.close()


def test_bad_ids_open_nothing(firestore_client: firestore.Client) -> None:
    turns = RecentTurns(MessageStore(firestore_client), limit=8)
    for call in (turns.get, turns.view, turns.read, turns.open):
        with pytest.raises(InvalidInputError):
            call("a/b", CHAR)
    assert turns.listening == 0


def test_listening_lets_blocked_grpc_threads_sleep(firestore_client: firestore.Client) -> None:
    RecentTurns(MessageStore(firestore_client), limit=8).close()
    # A gRPC release without this knob fails here instead of waking every listener's thread 10 times a second.
    assert grpc_common.MAXIMUM_WAIT_TIMEOUT == GRPC_WAIT_SLICE_S


def test_a_closed_service_reads_and_opens_nothing(firestore_client: firestore.Client, user_id: str) -> None:
    store = CountingStore(firestore_client)
    saved = save_turns(store, user_id, CHAR, filler_turns(2))
    turns = RecentTurns(store, limit=8)
    turns.open(user_id, CHAR)
    wait_until(lambda: turns.is_live(user_id, CHAR), "the listener's first view")
    turns.close()
    assert turns.listening == 0
    assert ids(turns.get(user_id, CHAR)) == ids(saved)  # a call still in flight at shutdown reads
    assert store.reads == 1 and turns.listening == 0


def test_a_failed_read_opens_no_listener_and_listeners_reconnect_slowly(
    firestore_client: firestore.Client, user_id: str
) -> None:
    dead = MessageStore(build_firestore_client(make_settings(f"127.0.0.1:{free_port()}", Path("/nonexistent"))))
    turns = RecentTurns(dead, limit=8)
    try:
        with pytest.raises(MessageStoreError):
            turns.read(user_id, CHAR, 0.25)
        assert not turns._listened[(user_id, CHAR)].started  # nothing to spin reconnecting against
    finally:
        turns.close()
    # The SDK reopens a listener's stream with no backoff; ours are throttled (a grpc/api_core release
    # without the knob fails here).
    watch = MessageStore(firestore_client).watch_recent_unsynced(user_id, CHAR, 8, lambda _turns: None)
    try:
        assert watch._rpc._reopen_throttle is not None
    finally:
        watch.unsubscribe()
    trigger_listener = MessageListener(firestore_client, lambda _user_id, _character_name: None)
    trigger_listener.start()
    try:
        assert trigger_listener._watch._rpc._reopen_throttle is not None
    finally:
        trigger_listener.stop()
