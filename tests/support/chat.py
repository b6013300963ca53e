"""Writing conversations into the emulator, and waiting for the pipeline to catch up."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

from services.message_store import MessageStore
from services.models import Message

T0 = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def save_turns(
    store: MessageStore,
    user_id: str,
    character_name: str,
    turns: Sequence[tuple[str, str]],
    start: datetime = T0,
    channel: str = "whatsapp",
) -> list[Message]:
    """Save turns one by one, a minute apart, through the store's own save path."""
    return [
        store.save_message(
            user_id,
            character_name,
            role=role,
            text=text,
            channel=channel,  # type: ignore[arg-type]
            created_at=start + timedelta(minutes=i),
        )
        for i, (role, text) in enumerate(turns)
    ]


def write_turns_at_once(
    client: firestore.Client,
    user_id: str,
    character_name: str,
    turns: Sequence[tuple[str, str]],
    start: datetime = T0,
) -> list[str]:
    """Write turns in one Firestore batch, as an app with the Firebase SDK would; returns their ids."""
    messages = (
        client.collection("users")
        .document(user_id)
        .collection("characters")
        .document(character_name)
        .collection("messages")
    )
    batch = client.batch()
    ids = []
    for i, (role, text) in enumerate(turns):
        ref = messages.document()
        batch.set(
            ref,
            {
                "role": role,
                "text": text,
                "channel": "whatsapp",
                "created_at": start + timedelta(minutes=i),
                "sync": False,
            },
        )
        ids.append(ref.id)
    batch.commit()
    return ids


def filler_turns(n: int, topic: str = "the weather") -> list[tuple[str, str]]:
    """n alternating turns of small talk, distinct from each other."""
    return [("user" if i % 2 == 0 else "assistant", f"Turn {i}: let's chat about {topic} for a bit.") for i in range(n)]


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
