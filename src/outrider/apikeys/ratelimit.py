"""A per-key token bucket, kept in the memory of each API process.

Each replica enforces the limit on its own: behind N replicas a key may make up to
N times the limit. That keeps the hot path free of a database write per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after_seconds: int  # until the next request would be allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


class TokenBucketLimiter:
    MAX_TRACKED = 50_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._clock = clock
        # key -> (tokens, last refill time)
        self._buckets: dict[object, tuple[float, float]] = {}

    def hit(self, key: object) -> Decision:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.MAX_TRACKED and key not in self._buckets:
            self._forget_full_buckets(now)
        self._buckets[key] = (tokens, now)
        missing = self.capacity - tokens
        return Decision(
            allowed=allowed,
            limit=int(self.capacity),
            remaining=int(tokens),
            reset_seconds=math.ceil(missing / self.refill_per_second),
            retry_after_seconds=0
            if allowed
            else max(1, math.ceil((1.0 - tokens) / self.refill_per_second)),
        )

    def _forget_full_buckets(self, now: float) -> None:
        # A bucket that has refilled completely holds no information worth keeping.
        self._buckets = {
            key: (tokens, last)
            for key, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self.refill_per_second < self.capacity
        }
