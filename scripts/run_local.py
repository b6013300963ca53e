"""`make run`: the API with its listener on 127.0.0.1:$PORT, on the emulator at FIRESTORE_EMULATOR_HOST,
or on one started here (and stopped on exit) when that is not set."""

from __future__ import annotations

import os
import signal
import sys

import uvicorn

from scripts import firestore_emulator


def main() -> int:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "demo-recall")
    # uvicorn re-raises SIGTERM once it has shut down; exiting normally instead lets the emulator stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with firestore_emulator.ensure_running() as emulator_host:
            print(
                f"Recall API on http://{host}:{port} (docs: /docs), Firestore at {emulator_host}, "
                f"project {os.environ['GOOGLE_CLOUD_PROJECT']}",
                flush=True,
            )
            uvicorn.run("api.main:app", host=host, port=port, log_level="info")
    except firestore_emulator.EmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
