"""Per-component health: a live, timed check of each component, plus what batches saw fail since.

A component is degraded when its check fails now, or when the last batch that used it failed because of
it and no batch has succeeded since (an LLM answering 429 passes no ping, but fails every batch).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.redact import redact

if TYPE_CHECKING:
    from services.container import Container

COMPONENTS = ("firestore", "qdrant", "embedder", "llm")


@dataclass
class ComponentStatus:
    status: str  # ok | degraded
    latency_ms: float
    detail: str | None = None


class ComponentMonitor:
    """The last failure each component caused in a batch, cleared by the next batch that succeeds."""

    def __init__(self) -> None:
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def failed(self, component: str, error: str) -> None:
        with self._lock:
            self._failures[component] = error

    def succeeded(self, *components: str) -> None:
        with self._lock:
            for component in components:
                self._failures.pop(component, None)

    def failure(self, component: str) -> str | None:
        with self._lock:
            return self._failures.get(component)


def check_health(container: Container) -> dict[str, ComponentStatus]:
    extractor_ping: Callable[[], object] = getattr(container.extractor, "ping", lambda: None)
    checks: dict[str, tuple[Callable[[], object], str]] = {
        "firestore": (container.store.ping, "emulator" if container.settings.firestore_emulator_host else "cloud"),
        "qdrant": (container.vectors.ping, container.vectors.backend),
        "embedder": (lambda: container.embedder.embed_query("health check"), container.embedder.name),
        "llm": (extractor_ping, container.extractor.name),
    }
    statuses = {name: _timed(fn, detail) for name, (fn, detail) in checks.items()}
    for name, status in statuses.items():
        failure = container.monitor.failure(name)
        if status.status == "ok" and failure is not None:
            status.status, status.detail = "degraded", f"{status.detail}: last batch failed: {failure}"
    return statuses


def _timed(fn: Callable[[], object], detail: str) -> ComponentStatus:
    start = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # health reports any failure rather than raising it
        return ComponentStatus("degraded", _ms(start), redact(f"{detail}: {type(exc).__name__}: {exc}"))
    return ComponentStatus("ok", _ms(start), detail)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
