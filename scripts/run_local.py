"""`make run`: the API with its listener on 127.0.0.1:$PORT, on the emulator at FIRESTORE_EMULATOR_HOST,
or on one started here (and stopped on exit) when that is not set."""

from __future__ import annotations

import os
import sys

import uvicorn

from scripts import firestore_emulator


def main() -> int:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "demo-recall")
    emulator = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        print("starting the Firestore emulator…", flush=True)
        try:
            emulator, address = firestore_emulator.start(
                int(os.environ["FIRESTORE_EMULATOR_PORT"]) if "FIRESTORE_EMULATOR_PORT" in os.environ else None
            )
        except firestore_emulator.EmulatorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        os.environ["FIRESTORE_EMULATOR_HOST"] = address
        print(f"Firestore emulator at {address} (project {os.environ['GOOGLE_CLOUD_PROJECT']})", flush=True)
    print(f"Recall API on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    try:
        uvicorn.run("api.main:app", host=host, port=port, log_level="info")
    finally:
        if emulator is not None:
            firestore_emulator.stop(emulator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
