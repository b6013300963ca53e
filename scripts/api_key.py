"""Make a service API key: prints the key once, and the entry to configure (its sha256, never the key).

    python -m scripts.api_key --name voice-handler --scopes read,write
    python -m scripts.api_key --name ops --scopes admin --rate-per-minute 600

Put the printed entry in the JSON list of RECALL_API_KEYS, or of the file named by RECALL_API_KEYS_FILE,
and give the key to the service that calls Recall (`Authorization: Bearer <key>`). Recall cannot show a
key again: to replace one, make a new key and remove the old entry.
"""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from services.auth import digest, new_key
from services.config import SCOPES, ApiKeyEntry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="who holds the key, e.g. voice-handler (A-Z a-z 0-9 . _ -)")
    parser.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(SCOPES)}")
    parser.add_argument("--rate-per-minute", type=int, default=None, help="this key's limit; 0: unlimited")
    args = parser.parse_args(argv)
    key = new_key()
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        entry = ApiKeyEntry(name=args.name, sha256=digest(key), scopes=scopes, rate_per_minute=args.rate_per_minute)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: {problems}", file=sys.stderr)
        return 2
    print(f"key (shown once; give it to {entry.name}): {key}")
    print("entry for RECALL_API_KEYS / RECALL_API_KEYS_FILE:")
    print(json.dumps(entry.model_dump(exclude_none=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
