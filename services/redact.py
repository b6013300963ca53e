"""Keep configured secrets out of everything Recall writes down: logs, batch records, health details.

Recall never logs a credential on purpose, but errors come from elsewhere: an LLM server may quote the
key it was sent, an SDK may put a URL with a key in an exception. `register` names the secret values
once (the container does, from the settings); `redact` replaces them in a text; `install` makes every
log record pass through `redact`, including formatted tracebacks.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

MASK = "[redacted]"
MIN_LENGTH = 8  # shorter values would mask ordinary words

_secrets: frozenset[str] = frozenset()
_lock = threading.Lock()
_installed = False


def register(*values: str | None) -> None:
    global _secrets
    with _lock:
        _secrets = _secrets | {v for v in values if v and len(v) >= MIN_LENGTH}


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def install() -> None:
    """Redact every log record as it is made, whichever library logs it. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if not _secrets:
            return record
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_record)
