"""What each Firestore operation of the pipeline costs the Firestore emulator, in its own CPU time.

    .venv/bin/python scripts/bench_emulator.py            # 10k messages stored over 100 conversations
    .venv/bin/python scripts/bench_emulator.py --quick    # 2k messages

The emulator shares this machine's two cores with the API in every benchmark, so what it spends on each
operation is taken from the API's batches. This starts an emulator of its own (it reads the CPU time of
the emulator's processes from /proc), stores the messages, then times each operation a number of times:
the emulator's CPU (user + system, all its processes) and the wall time per operation. Writes are timed
three ways: with no listener open, with the local trigger's collection-group listener open (`make run`'s
`MessageListener`), and with a recent-turns listener open on another conversation (the context service's).

Progress goes to stderr; the figures are one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from scripts import firestore_emulator
from scripts.bench_common import report
from services.config import Settings
from services.container import build_firestore_client
from services.message_listener import MessageListener
from services.message_store import BatchReport, Claim, MessageStore

CONVERSATIONS = 100
CHARACTER = "meher"
CHUNK = 25
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class BenchError(RuntimeError):
    pass


def progress(message: str) -> None:
    print(f"[bench_emulator {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class EmulatorCpu:
    """CPU seconds used so far by every process in the emulator's process group (the launcher and java)."""

    def __init__(self, group: int) -> None:
        self._group = group
        self._tick = os.sysconf("SC_CLK_TCK")

    def seconds(self) -> float:
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self._group:  # fields after the name: state, ppid, pgrp, ...
                    total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / self._tick


@contextlib.contextmanager
def own_emulator() -> Iterator[tuple[str, EmulatorCpu]]:
    if not Path("/proc/self/stat").exists():
        raise BenchError("this benchmark reads the emulator's CPU time from /proc: run it on Linux")
    progress("starting a Firestore emulator of its own")
    process, host = firestore_emulator.start()
    try:
        yield host, EmulatorCpu(process.pid)  # started in a session of its own: its pid is its group
    finally:
        firestore_emulator.stop(process)


def messages(store: MessageStore, user_id: str) -> firestore.CollectionReference:
    return store.conversation(user_id, CHARACTER).collection("messages")


def store_messages(client: firestore.Client, store: MessageStore, per_conversation: int) -> None:
    for c in range(CONVERSATIONS):
        conversation = messages(store, f"user-{c:03d}")
        batch = client.batch()
        for i in range(per_conversation):
            batch.set(
                conversation.document(f"m{i:05d}"),
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "text": f"message {i} of conversation {c}, about the weather and work",
                    "channel": "whatsapp",
                    "created_at": T0 + timedelta(seconds=i),
                    "sync": False,
                },
            )
            if (i + 1) % 400 == 0:  # a WriteBatch takes at most 500 writes
                batch.commit()
                batch = client.batch()
        batch.commit()
        if (c + 1) % 25 == 0:
            progress(f"stored {(c + 1) * per_conversation:,} messages")


def write_chunk(client: firestore.Client, store: MessageStore, user_id: str) -> None:
    batch = client.batch()
    for _ in range(CHUNK):
        data = {"role": "user", "text": "a new message", "channel": "whatsapp", "created_at": datetime.now(UTC)}
        batch.set(messages(store, user_id).document(), {**data, "sync": False})
    batch.commit()


def timed(cpu: EmulatorCpu, operation: Callable[[int], object], times: int) -> dict[str, float | int]:
    """The emulator's CPU and the wall time per call of `operation(i)`, i in range(times)."""
    time.sleep(0.5)  # let work of the step before settle
    cpu_start, wall_start = cpu.seconds(), time.perf_counter()
    for i in range(times):
        operation(i)
    wall = time.perf_counter() - wall_start
    time.sleep(1.0)  # listeners are served after the commit returns: count what that costs too
    return {
        "n": times,
        "emulator_cpu_ms": round((cpu.seconds() - cpu_start) * 1000 / times, 1),
        "wall_ms": round(wall * 1000 / times, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    per_conversation = (2_000 if args.quick else args.messages) // CONVERSATIONS
    times = 10 if args.quick else 20
    start = time.perf_counter()
    with own_emulator() as (host, cpu), contextlib.ExitStack() as stack:
        project = f"demo-bench-emulator-{uuid.uuid4().hex[:8]}"
        client = build_firestore_client(
            Settings(_env_file=None, google_cloud_project=project, firestore_emulator_host=host)
        )
        stack.callback(client.close)
        store = MessageStore(client)
        store_messages(client, store, per_conversation)
        stored = per_conversation * CONVERSATIONS
        progress(f"timing each operation {times} times at {stored:,} stored messages")
        users = [f"user-{c:03d}" for c in range(CONVERSATIONS)]
        group_count: Any = client.collection_group("messages").where(filter=FieldFilter("sync", "==", True))
        claims: list[Claim] = []

        def claim(i: int) -> None:
            held = store.claim(
                users[i], CHARACTER, batch_id=uuid.uuid4().hex, max_messages=100, min_messages=1, lease_seconds=300
            )
            if held is None:
                raise BenchError(f"nothing to claim for {users[i]}")
            claims.append(held)

        ops: dict[str, dict[str, float | int]] = {}
        ops["write_25_messages"] = timed(cpu, lambda i: write_chunk(client, store, users[-1 - i]), times)
        ops["count_unsynced_one_conversation"] = timed(cpu, lambda i: store.count_unsynced(users[i], CHARACTER), times)
        ops["count_synced_collection_group"] = timed(cpu, lambda i: group_count.count(alias="n").get(), times)
        ops["claim_100"] = timed(cpu, claim, times)
        ops["renew_100"] = timed(cpu, lambda i: store.renew(claims[i], 300), times)
        ops["commit_100"] = timed(cpu, lambda i: store.commit(claims[i], BatchReport(status="succeeded")), times)

        recent = store.watch_recent_unsynced(users[-1], CHARACTER, 8, lambda _messages: None)
        ops["write_25_messages_recent_turns_listener_same_conversation"] = timed(
            cpu, lambda _i: write_chunk(client, store, users[-1]), times
        )
        ops["write_25_messages_recent_turns_listener_elsewhere"] = timed(
            cpu, lambda i: write_chunk(client, store, users[-2 - i]), times
        )
        recent.unsubscribe()
        listener = MessageListener(client, lambda _user, _character: None)
        listener.start()
        stack.callback(listener.stop)
        time.sleep(2.0)  # its first snapshot
        ops["write_25_messages_trigger_listener"] = timed(
            cpu, lambda i: write_chunk(client, store, users[-1 - i]), times
        )
    return {
        "benchmark": "emulator",
        "mode": "quick" if args.quick else "default",
        "messages_stored": stored,
        "conversations": CONVERSATIONS,
        "operations": ops,
        "elapsed_s": round(time.perf_counter() - start, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2k messages stored (under a minute)")
    parser.add_argument("--messages", type=int, default=10_000, help="messages stored, over 100 conversations")
    args = parser.parse_args(argv)
    if args.messages < CONVERSATIONS * 2:
        parser.error(f"--messages must be at least {CONVERSATIONS * 2}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report(lambda: run(args), cleaned="the emulator", final_errors=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
