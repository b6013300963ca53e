"""Per-component health: each check is timed, and a failure names the component without failing the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.container import Container


@dataclass
class ComponentStatus:
    status: str  # ok | degraded
    latency_ms: float
    detail: str | None = None


def check_health(container: Container) -> dict[str, ComponentStatus]:
    extractor_ping: Callable[[], object] = getattr(container.extractor, "ping", lambda: None)
    checks: dict[str, tuple[Callable[[], object], str]] = {
        "firestore": (container.store.ping, container.settings.firestore_emulator_host or "cloud"),
        "qdrant": (container.vectors.ping, container.vectors.backend),
        "embedder": (lambda: container.embedder.embed_query("health check"), container.embedder.name),
        "llm": (extractor_ping, container.extractor.name),
    }
    return {name: _timed(fn, detail) for name, (fn, detail) in checks.items()}


def _timed(fn: Callable[[], object], detail: str) -> ComponentStatus:
    start = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # health reports any failure rather than raising it
        return ComponentStatus("degraded", _ms(start), f"{detail}: {type(exc).__name__}: {exc}")
    return ComponentStatus("ok", _ms(start), detail)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
