"""`make demo`: write a 30-message conversation, let the pipeline run, print the memories and a prompt.

Runs in-process on the emulator at FIRESTORE_EMULATOR_HOST (or one it starts) and a fresh Qdrant Edge
directory, so it never touches the data of a running `make run`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts import firestore_emulator
from scripts.sample_conversation import MAYA
from services.config import Settings
from services.container import Container

CHARACTER = "meher"
BASE_PROMPT = "You are Meher, a warm and curious companion. Keep replies short."


def run_demo(settings: Settings) -> None:
    print("loading the embedding model and opening Qdrant Edge…", flush=True)
    container = Container.build(settings)
    user_id = f"maya-{uuid.uuid4().hex[:6]}"
    try:
        start = datetime.now(UTC) - timedelta(minutes=len(MAYA))
        print(f"\n== {len(MAYA)} messages in ({user_id} ↔ {CHARACTER}, whatsapp)")
        for i, (role, text) in enumerate(MAYA):
            container.store.save_message(
                user_id,
                CHARACTER,
                role=role,  # type: ignore[arg-type]
                text=text,
                created_at=start + timedelta(minutes=i),
            )
            print(f"  {role:>9}: {text}")
        trigger = container.processor.trigger(user_id, CHARACTER)
        print(
            f"\n== trigger: {trigger.unsynced_count} unsynced, threshold {trigger.threshold}, "
            f"batch started: {trigger.batch_started} ({trigger.batch_id})"
        )
        deadline = time.monotonic() + 120
        while container.store.count_unsynced(user_id, CHARACTER) and time.monotonic() < deadline:
            time.sleep(0.1)
        batch = container.store.last_batch(user_id, CHARACTER) or {}
        print(
            f"   batch {batch.get('status')}: {batch.get('memory_count')} memories, "
            f"{batch.get('episode_count')} episodes, "
            f"stage timings (ms) {batch.get('timings_ms')}"
        )
        print("\n== memories out")
        stored = container.vectors.list_memories(user_id, CHARACTER)
        for memory in sorted((m for m in stored if m.type != "episode"), key=lambda m: -m.importance):
            print(f"  [{memory.type:<12} {memory.importance:.2f}] {memory.text}")
        for channel, message in (
            ("whatsapp", "I'm so nervous about Friday, any advice?"),
            ("voice", "What should I pack for Lisbon?"),
        ):
            prompt = asyncio.run(
                container.integration.enhance_system_prompt(
                    user_id=user_id,
                    character_name=CHARACTER,
                    current_message=message,
                    base_system_prompt=BASE_PROMPT,
                    channel=channel,
                )
            )
            print(f"\n== enriched prompt ({channel}) for: {message!r}\n{prompt}")
    finally:
        container.close()


def main() -> int:
    try:
        with firestore_emulator.ensure_running() as emulator_host, tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                qdrant_path=Path(tmp) / "qdrant",
                listener_enabled=False,
                firestore_emulator_host=emulator_host,
                google_cloud_project=os.environ.get("GOOGLE_CLOUD_PROJECT", "demo-recall"),
            )
            run_demo(settings)
    except firestore_emulator.EmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
