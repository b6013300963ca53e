from __future__ import annotations

from datetime import timedelta

import pytest

from services.errors import ConflictError, InvalidInputError, LeaseLostError
from services.message_store import BatchReport, Claim, MessageStore
from tests.support.chat import T0, filler_turns, save_turns

CHAR = "meher"


def test_save_message_round_trips_and_counts(store: MessageStore, user_id: str) -> None:
    text = "Ünïcödé ✓ 日本語 🎉 and a 'quote'"
    saved = store.save_message(user_id, CHAR, role="user", text=text, channel="voice", created_at=T0)
    assert saved.sync is False
    assert store.count_unsynced(user_id, CHAR) == 1
    assert store.count_synced(user_id, CHAR) == 0
    [recent] = store.recent_unsynced(user_id, CHAR, 5)
    assert (recent.id, recent.text, recent.channel, recent.created_at) == (saved.id, text, "voice", T0)


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", "__x__", "tab\there", "x" * 129, "nul\x00"])
def test_bad_ids_never_become_paths(store: MessageStore, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        store.save_message(bad, CHAR, role="user", text="hello")
    with pytest.raises(InvalidInputError):
        store.save_message("someone", bad, role="user", text="hello")


def test_bad_messages_are_refused(store: MessageStore, user_id: str) -> None:
    with pytest.raises(InvalidInputError):
        store.save_message(user_id, CHAR, role="system", text="hi")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.save_message(user_id, CHAR, role="user", text="   ")
    with pytest.raises(InvalidInputError):
        store.save_message(user_id, CHAR, role="user", text="x" * 8001)
    assert store.count_unsynced(user_id, CHAR) == 0


def test_existing_message_id_is_a_conflict(store: MessageStore, user_id: str) -> None:
    store.save_message(user_id, CHAR, role="user", text="first", message_id="m-1")
    with pytest.raises(ConflictError):
        store.save_message(user_id, CHAR, role="user", text="second", message_id="m-1")
    assert [m.text for m in store.recent_unsynced(user_id, CHAR, 5)] == ["first"]


def test_claim_takes_oldest_and_respects_live_leases(store: MessageStore, user_id: str) -> None:
    saved = save_turns(store, user_id, CHAR, filler_turns(12))
    first = store.claim(user_id, CHAR, batch_id="b1", max_messages=5, min_messages=5, lease_seconds=60)
    assert first is not None and first.message_ids == [m.id for m in saved[:5]]
    second = store.claim(user_id, CHAR, batch_id="b2", max_messages=5, min_messages=5, lease_seconds=60)
    assert second is not None and second.message_ids == [m.id for m in saved[5:10]]
    # Two messages are left free: not enough for a third batch of five.
    assert store.claim(user_id, CHAR, batch_id="b3", max_messages=5, min_messages=5, lease_seconds=60) is None


def test_expired_lease_can_be_taken_over_and_fences_the_old_batch(store: MessageStore, user_id: str) -> None:
    save_turns(store, user_id, CHAR, filler_turns(3))
    stale = store.claim(user_id, CHAR, batch_id="stale", max_messages=10, min_messages=1, lease_seconds=0.001)
    assert stale is not None
    fresh_store = MessageStore(store._db, clock=lambda: T0 + timedelta(days=3650))
    fresh = fresh_store.claim(user_id, CHAR, batch_id="fresh", max_messages=10, min_messages=1, lease_seconds=60)
    assert fresh is not None and fresh.message_ids == stale.message_ids
    with pytest.raises(LeaseLostError):
        store.commit(stale, BatchReport(status="succeeded"))
    assert store.count_synced(user_id, CHAR) == 0
    fresh_store.commit(fresh, BatchReport(status="succeeded", memory_count=2))
    assert store.count_synced(user_id, CHAR) == 3
    batch = store.get_batch(user_id, CHAR, "fresh")
    assert batch is not None and batch["status"] == "succeeded" and batch["memory_count"] == 2


def leases(store: MessageStore, claim: Claim) -> set[object]:
    docs = store._db.get_all(
        [store.conversation(claim.user_id, CHAR).collection("messages").document(m) for m in claim.message_ids]
    )
    return {d.get("lease_expires_at") for d in docs}


def test_fence_trusts_a_fresh_lease_and_renews_an_old_one(store: MessageStore, user_id: str) -> None:
    save_turns(store, user_id, CHAR, filler_turns(3))
    claim = store.claim(user_id, CHAR, batch_id="b1", max_messages=10, min_messages=1, lease_seconds=60)
    assert claim is not None
    claimed = leases(store, claim)
    assert len(claimed) == 1

    store.fence(claim, 60)  # more than half the lease left: the lease is the fence, nothing is written
    assert leases(store, claim) == claimed

    later = T0 + timedelta(days=3650)  # any store clock past the lease's half
    aged = MessageStore(store._db, clock=lambda: later)
    aged.fence(claim, 60)
    assert leases(store, claim) == {later + timedelta(seconds=60)} == {claim.lease_expires_at}


def test_fence_refuses_a_batch_whose_messages_were_taken_over(store: MessageStore, user_id: str) -> None:
    save_turns(store, user_id, CHAR, filler_turns(3))
    stale = store.claim(user_id, CHAR, batch_id="stale", max_messages=10, min_messages=1, lease_seconds=0.001)
    assert stale is not None
    fresh_store = MessageStore(store._db, clock=lambda: T0 + timedelta(days=3650))
    assert fresh_store.claim(user_id, CHAR, batch_id="fresh", max_messages=10, min_messages=1, lease_seconds=60)
    with pytest.raises(LeaseLostError):
        store.fence(stale, 0.001)


def test_release_returns_messages_unsynced(store: MessageStore, user_id: str) -> None:
    save_turns(store, user_id, CHAR, filler_turns(4))
    claim = store.claim(user_id, CHAR, batch_id="b-fail", max_messages=10, min_messages=1, lease_seconds=600)
    assert claim is not None
    store.release(claim, BatchReport(status="failed", error="extract: boom"))
    assert store.count_unsynced(user_id, CHAR) == 4
    again = store.claim(user_id, CHAR, batch_id="b-retry", max_messages=10, min_messages=1, lease_seconds=600)
    assert again is not None and again.message_ids == claim.message_ids
    failed = store.get_batch(user_id, CHAR, "b-fail")
    assert failed is not None and failed["status"] == "failed" and "boom" in failed["error"]
