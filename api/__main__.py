"""`python -m api`: serve the API on $HOST:$PORT (127.0.0.1:8000), refusing a public interface without keys.

The way to run Recall in production (Cloud Run: HOST=0.0.0.0, PORT from the platform, keys from
RECALL_API_KEYS or RECALL_API_KEYS_FILE). `make run` goes through scripts/run_local.py, which also
starts an emulator and makes a development key.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from services.auth import refuse_public_without_keys
from services.config import Settings
from services.errors import ConfigurationError


def main() -> int:
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    try:
        refuse_public_without_keys(host, Settings())
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    uvicorn.run("api.main:app", host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "info"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
