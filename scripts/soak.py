"""Soak: many conversations written concurrently while the batch processor is SIGKILLed at random.

    python -m scripts.soak [--users 50] [--messages 200] [--kill-every 4.0] [--seed 7]

Writers put `users x messages` messages into the Firestore emulator (started here unless
FIRESTORE_EMULATOR_HOST is set) while a processor runs in a subprocess that is killed at random moments
and restarted. When the writers are done, a last processor runs until every message is synced, then the
invariants are checked against Firestore and Qdrant Edge:

  - every message is synced, and belongs to exactly one succeeded batch;
  - every stored memory belongs to a succeeded batch of its own conversation and cites only its messages;
  - each succeeded batch has exactly the memories it recorded (no duplicates, no orphans).

Progress goes to stderr; the last line of stdout is one JSON object with the counts and violations.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from scripts import firestore_emulator
from scripts.sample_conversation import MAYA
from services.config import Settings
from services.container import Container, build_firestore_client

CHARACTER = "meher"
LEASE_S = 3.0


def say(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def settings_for(host: str, project: str, qdrant: Path) -> Settings:
    return Settings(
        _env_file=None,
        google_cloud_project=project,
        firestore_emulator_host=host,
        qdrant_path=qdrant,
        listener_enabled=False,
        batch_lease_seconds=LEASE_S,
        batch_retry_base_seconds=0.5,
        batch_retry_max_seconds=5.0,
        idle_flush_seconds=2.0,
    )


# -- the processor, in its own process ------------------------------------------------------------
def worker(host: str, project: str, qdrant: Path, users: list[str], until_synced: bool) -> int:
    container = Container.build(settings_for(host, project, qdrant))
    processor, store = container.processor, container.store
    print("ready", flush=True)  # the parent kills at a random moment after this, mid-work
    try:
        while True:
            for user in users:
                processor.run_chain(processor.claim(user, CHARACTER))
            container.sweeper.sweep(wait=True)  # the tail of each conversation, below the threshold
            if until_synced and all(store.count_unsynced(u, CHARACTER) == 0 for u in users):
                return 0
            time.sleep(0.2)
    finally:
        container.close()


# -- writers ----------------------------------------------------------------------------------------
def write_conversation(
    client: firestore.Client, user: str, messages: int, rng: random.Random, duration_s: float
) -> None:
    ref = client.collection("users").document(user).collection("characters").document(CHARACTER)
    start = datetime.now(UTC) - timedelta(minutes=messages)
    written = 0
    while written < messages:
        chunk = min(rng.randint(1, 30), messages - written)
        batch = client.batch()
        for i in range(written, written + chunk):
            role, text = MAYA[i % len(MAYA)]
            batch.set(
                ref.collection("messages").document(),
                {
                    "role": role,
                    "text": f"{text} (#{i})",
                    "channel": "whatsapp",
                    "created_at": start + timedelta(minutes=i),
                    "sync": False,
                },
            )
        commit_with_retries(batch)
        written += chunk
        # Chunks average 15 messages: spread them so the writing lasts about duration_s.
        time.sleep(rng.uniform(0.0, 2 * duration_s * 15 / messages))


WRITE_RETRIES: Counter[str] = Counter()


def commit_with_retries(batch: firestore.WriteBatch, attempts: int = 5) -> None:
    """Commit as a chat app would: retry a contended or unavailable write with backoff, and count it."""
    for attempt in range(attempts):
        try:
            batch.commit()
            return
        except (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
            WRITE_RETRIES[type(exc).__name__] += 1
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)


def write_all(client: firestore.Client, users: list[str], messages: int, seed: int, duration_s: float) -> None:
    threads = [
        threading.Thread(target=write_conversation, args=(client, u, messages, random.Random(seed + n), duration_s))
        for n, u in enumerate(users)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# -- the run ----------------------------------------------------------------------------------------
def spawn(host: str, project: str, qdrant: Path, users: list[str], until_synced: bool) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "scripts.soak",
        "--worker",
        host,
        project,
        str(qdrant),
        "--until-synced" if until_synced else "--forever",
        *users,
    ]
    return subprocess.Popen(
        command, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def wait_ready(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    if process.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"the processor exited during start-up (code {process.wait()}); run it by hand to see why")


def run(args: argparse.Namespace, host: str, qdrant: Path) -> dict[str, Any]:
    project = f"demo-soak-{os.getpid()}"
    users = [f"soak-user-{n:03d}" for n in range(args.users)]
    client = build_firestore_client(settings_for(host, project, qdrant))
    Container.build(settings_for(host, project, qdrant)).close()  # creates the shard once
    rng = random.Random(args.seed)
    writers = threading.Thread(target=write_all, args=(client, users, args.messages, args.seed, args.write_seconds))
    say(f"writing {args.users} x {args.messages} messages while killing the processor every ~{args.kill_every}s")
    started = time.monotonic()
    writers.start()
    kills = 0
    while writers.is_alive():
        process = spawn(host, project, qdrant, users, until_synced=False)
        wait_ready(process)
        time.sleep(rng.uniform(0.0, 2 * args.kill_every))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        say(f"killed the processor ({kills} kills so far)")
    say("writers done; a last processor runs until every message is synced")
    final = spawn(host, project, qdrant, users, until_synced=True)
    try:
        final.wait(timeout=args.settle_timeout)
    except subprocess.TimeoutExpired:
        final.kill()
        final.wait()
        say(f"the last processor did not finish within {args.settle_timeout}s")
    say("checking invariants")
    report = check(settings_for(host, project, qdrant), users, args.messages)
    report.update(
        kills=kills, seconds=round(time.monotonic() - started, 1), users=args.users, writer_retries=dict(WRITE_RETRIES)
    )
    return report


def check(settings: Settings, users: list[str], messages_per_user: int) -> dict[str, Any]:
    container = Container.build(settings)
    counts: Counter[str] = Counter()
    violations: list[str] = []
    try:
        for user in users:
            check_conversation(container, user, messages_per_user, counts, violations)
    finally:
        container.close()
    return {
        "messages": counts["messages"],
        "synced": counts["synced"],
        "batches": counts["batches"],
        "batches_by_status": {k[7:]: v for k, v in counts.items() if k.startswith("status:")},
        "retried_batches": counts["retries"],
        "reclaimed_messages": counts["reclaimed_messages"],
        "abandoned_batches": counts["status:running"],
        "memories": counts["memories"],
        "violations": len(violations),
        "violation_examples": violations[:10],
    }


def check_conversation(container: Container, user: str, expected: int, counts: Counter[str], bad: list[str]) -> None:
    conversation = container.store.conversation(user, CHARACTER)
    messages = {d.id: d.to_dict() or {} for d in conversation.collection("messages").stream()}
    batches = {d.id: d.to_dict() or {} for d in conversation.collection("batches").stream()}
    counts.update(
        messages=len(messages),
        synced=sum(bool(m.get("sync")) for m in messages.values()),
        batches=len(batches),
        retries=sum(b.get("attempt", 1) > 1 for b in batches.values()),
    )
    counts.update(f"status:{b.get('status')}" for b in batches.values())
    claims = Counter(mid for b in batches.values() for mid in b.get("message_ids", []))
    counts.update(reclaimed_messages=sum(n > 1 for n in claims.values()))
    if len(messages) != expected:
        bad.append(f"{user}: {len(messages)} messages stored, {expected} written")
    succeeded = {bid: b for bid, b in batches.items() if b.get("status") == "succeeded"}
    owners = Counter(mid for b in succeeded.values() for mid in b.get("message_ids", []))
    for mid, message in messages.items():
        if not message.get("sync"):
            bad.append(f"{user}/{mid}: not synced")
        if owners[mid] != 1:
            bad.append(f"{user}/{mid}: in {owners[mid]} succeeded batches")
    memories = container.vectors.list_memories(user, CHARACTER, limit=100_000)
    counts.update(memories=len(memories))
    per_batch = Counter(m.batch_id for m in memories)
    for memory in memories:
        batch = succeeded.get(memory.batch_id)
        if batch is None:
            bad.append(f"{user}: orphan memory {memory.id} of batch {memory.batch_id}")
        elif not set(memory.source_message_ids) <= set(batch.get("message_ids", [])):
            bad.append(f"{user}: memory {memory.id} cites messages outside its batch")
    for bid, batch in succeeded.items():
        recorded = batch.get("memory_count", 0) + batch.get("episode_count", 0)
        if per_batch[bid] != recorded:
            bad.append(f"{user}: batch {bid} recorded {recorded} memories and episodes, {per_batch[bid]} stored")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        host, project, qdrant, mode, *users = sys.argv[2:]
        return worker(host, project, Path(qdrant), users, until_synced=mode == "--until-synced")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 users x 100 messages over 20 s")
    parser.add_argument("--messages", type=int, default=200, help="messages per user")
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds a processor lives once ready")
    parser.add_argument("--write-seconds", type=float, default=90.0, help="how long the writing lasts")
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        args.users, args.messages, args.write_seconds, args.kill_every = 5, 100, 20.0, 2.0
    with firestore_emulator.ensure_running() as host, tempfile.TemporaryDirectory(prefix="recall-soak-") as tmp:
        report = run(args, host, Path(tmp) / "qdrant")
    print(json.dumps(report))
    return 0 if report["violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
