"""Flush conversations that stayed below the batch threshold for IDLE_FLUSH_SECONDS.

    python -m scripts.sweep [--quiet-seconds N]

Uses the same configuration as the API (FIRESTORE_EMULATOR_HOST or real Firestore, QDRANT_URL or
QDRANT_PATH). Qdrant Edge allows one process per directory: against a running `make run`, call
`POST /memory/sweep` instead (the API also sweeps on its own every SWEEP_INTERVAL_SECONDS).
"""

from __future__ import annotations

import argparse
import logging
import sys

from services.config import Settings
from services.container import Container
from services.errors import RecallError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet-seconds", type=float, default=None, help="override IDLE_FLUSH_SECONDS")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {"idle_flush_seconds": args.quiet_seconds} if args.quiet_seconds is not None else {}
    settings = Settings(listener_enabled=False, **overrides)
    try:
        container = Container.build(settings)
    except RecallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"sweeping conversations quiet for {settings.idle_flush_seconds:.0f}s…", file=sys.stderr)
        report = container.sweeper.sweep(wait=True)
    finally:
        container.close()
    failed = [o for o in report.outcomes if o.status != "succeeded"]
    print(
        f"scanned {report.scanned_messages} quiet messages in {report.quiet_conversations} conversations; "
        f"{len(report.outcomes)} batches, {len(failed)} failed, {len(report.errors)} errors"
    )
    for outcome in failed:
        print(f"  batch {outcome.batch_id}: {outcome.error}", file=sys.stderr)
    return 1 if failed or report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
