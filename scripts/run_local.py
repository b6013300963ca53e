"""`make run`: the API with its listener on 127.0.0.1:$PORT, on the emulator at FIRESTORE_EMULATOR_HOST,
or on one started here (and stopped on exit) when that is not set.

Access: without configured keys, a full-scope development key comes from RECALL_DEV_API_KEY, or is made
here and printed. Serving beyond this machine (HOST other than loopback) needs RECALL_API_KEYS or
RECALL_API_KEYS_FILE.
"""

from __future__ import annotations

import os
import signal
import sys

import uvicorn

from scripts import firestore_emulator
from services.auth import new_key, refuse_public_without_keys
from services.config import Settings
from services.errors import ConfigurationError


def development_key(settings: Settings) -> str | None:
    """The key to print: one made here when no key is configured at all; None otherwise."""
    if settings.recall_api_keys or settings.recall_api_keys_file or settings.recall_dev_api_key:
        return None
    key = new_key()
    os.environ["RECALL_DEV_API_KEY"] = key
    return key


def main() -> int:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "demo-recall")
    # uvicorn re-raises SIGTERM once it has shut down; exiting normally instead lets the emulator stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        settings = Settings()
        refuse_public_without_keys(host, settings)
        made = development_key(settings)
        with firestore_emulator.ensure_running() as emulator_host:
            print(
                f"Recall API on http://{host}:{port} (docs: /docs), Firestore at {emulator_host}, "
                f"project {os.environ['GOOGLE_CLOUD_PROJECT']}",
                flush=True,
            )
            if made:
                print(
                    f"development key (full scope, this run only; set RECALL_DEV_API_KEY to keep one): {made}\n"
                    f"  curl -H 'Authorization: Bearer {made}' "
                    f"'http://{host}:{port}/memory/stats/<user_id>/<character_name>'",
                    flush=True,
                )
            uvicorn.run("api.main:app", host=host, port=port, log_level="info")
    except (firestore_emulator.EmulatorError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
