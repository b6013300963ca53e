"""A batch processor in its own process that SIGKILLs itself at a chosen stage of its batch.

    python -m tests.support.crash_worker EMULATOR_HOST PROJECT QDRANT_PATH USER_ID CHARACTER STAGE LEASE_S

STAGE is claimed | extracted | upserted | committing; at `committing` the kill lands a few milliseconds
into the commit, so the commit may or may not have applied: both must end in the same state.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from pathlib import Path

from services.config import Settings
from services.container import Container
from services.message_store import Claim


def kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    host, project, qdrant_path, user_id, character, target, lease_s = sys.argv[1:8]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        google_cloud_project=project,
        firestore_emulator_host=host,
        qdrant_path=Path(qdrant_path),
        listener_enabled=False,
        batch_lease_seconds=float(lease_s),
    )
    container = Container.build(settings)

    def on_stage(stage: str, _claim: Claim) -> None:
        if stage != target:
            return
        if stage == "committing":
            threading.Timer(random.uniform(0.0, 0.03), kill_now).start()
        else:
            kill_now()

    container.processor.on_stage = on_stage
    container.processor.run_chain(container.processor.claim(user_id, character))
    # Reaching here means the kill never came: the parent test fails on the exit code.
    sys.exit(3)


if __name__ == "__main__":
    main()
