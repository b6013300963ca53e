"""What every benchmark script shares: clean interruption, errors that say what to do, the JSON last line."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from scripts import firestore_emulator
from services.errors import RecallError


def clear_project(host: str, project: str) -> None:
    """Empty a benchmark's emulator project; a failure here only leaves data in a throwaway project."""
    with contextlib.suppress(OSError):
        firestore_emulator.clear(host, project)


def report(
    run: Callable[[], dict[str, Any]],
    *,
    cleaned: str = "the emulator and temporary files",
    final_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run a benchmark and print its figures as one JSON object on the last line of stdout.

    SIGTERM is turned into KeyboardInterrupt so that `run`'s context managers clean up either way.
    """

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    final: tuple[type[Exception], ...] = (firestore_emulator.EmulatorError, *final_errors)
    try:
        result = run()
    except final as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RecallError as exc:
        print(f"error: {exc} (run `make install` on a fresh clone)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {cleaned} were cleaned up", file=sys.stderr)
        return 130
    print(json.dumps(result, default=str))
    return 0
