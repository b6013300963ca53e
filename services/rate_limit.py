"""Per-credential rate limits: a token bucket per (credential, endpoint class), in this process.

A bucket holds `per_minute` calls and refills continuously at `per_minute / 60` a second, so a caller
may burst a minute's allowance and then sustain the rate. Several API processes each keep their own
buckets: behind a load balancer the effective limit is per process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_PRUNE_AT = 10_000  # buckets kept before idle (full) ones are dropped


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, who: str, kind: str, per_minute: int) -> float | None:
        """Spend one call; None if allowed, else the seconds until one is available. 0 means unlimited."""
        if per_minute <= 0:
            return None
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((who, kind))
            if bucket is None:
                if len(self._buckets) >= _PRUNE_AT:
                    self._prune(now)
                bucket = self._buckets[(who, kind)] = _Bucket(float(per_minute), now)
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / rate

    def _prune(self, now: float) -> None:
        # A bucket idle for a minute or more is full again, the same as a new one.
        idle = [k for k, b in self._buckets.items() if now - b.updated >= 60.0]
        for key in idle:
            del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
