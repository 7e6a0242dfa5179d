"""Token buckets: how many jobs a tenant may submit per second, with a burst.

Pure: the clock is a parameter (seconds from a monotonic clock), nothing is read from
the system, so tests drive time by hand. The API keeps one :class:`RateLimiter` per
process (see :mod:`infq.tenants.quotas`).

A request may cost more than the bucket holds (a batch upload of 1,000 jobs under a
rate of 10 jobs/s). Refusing it forever would be useless, so a full bucket admits any
cost and goes into debt: the tenant then waits until the debt is repaid. Over any
period the admitted jobs stay within ``capacity + rate * elapsed`` plus the last
request's overdraft.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Float rounding must not refuse a client that waited exactly the time it was told.
_EPSILON = 1e-9


@dataclass
class TokenBucket:
    """``capacity`` tokens at most, refilled at ``rate_per_s``; ``tokens`` may be below
    zero after an overdraft (see the module docstring)."""

    rate_per_s: float
    capacity: float
    tokens: float
    updated_s: float

    @classmethod
    def full(cls, *, rate_per_s: float, capacity: float, now_s: float) -> TokenBucket:
        """A bucket that admits a first burst of ``capacity`` at once."""
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError(f"rate {rate_per_s} and capacity {capacity} must be positive")
        return cls(rate_per_s=rate_per_s, capacity=capacity, tokens=capacity, updated_s=now_s)

    def take(self, cost: float, *, now_s: float) -> float:
        """Take ``cost`` tokens if they may be taken now and return 0.0; otherwise take
        nothing and return how many seconds to wait before the same request passes."""
        self.refill(now_s)
        needed = min(cost, self.capacity)  # a full bucket admits any cost (the debt rule)
        if self.tokens + _EPSILON >= needed:
            self.tokens -= cost
            return 0.0
        return (needed - self.tokens) / self.rate_per_s

    def refill(self, now_s: float) -> None:
        """Add what the rate earned since the last update, up to the capacity."""
        elapsed_s = max(0.0, now_s - self.updated_s)  # a clock never runs backwards here
        self.tokens = min(self.capacity, self.tokens + elapsed_s * self.rate_per_s)
        self.updated_s = max(self.updated_s, now_s)


class RateLimiter:
    """One token bucket per key (a tenant), created full on first use.

    A bucket holds ``burst_s`` seconds of its rate (at least one job, so every job can
    pass eventually). Callers pass the rate each time: a changed rate takes effect on
    the next request and keeps what the bucket held (capped at the new capacity);
    ``None`` (no limit) forgets the key. Safe to share between threads.
    """

    def __init__(self, *, burst_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if burst_s <= 0:
            raise ValueError(f"burst_s must be positive, got {burst_s}")
        self.burst_s = burst_s
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def capacity(self, rate_per_s: float) -> float:
        """The burst a bucket of this rate admits at once."""
        return max(1.0, rate_per_s * self.burst_s)

    def take(self, key: str, cost: float, *, rate_per_s: float | None) -> float:
        """As :meth:`TokenBucket.take` on ``key``'s bucket; 0.0 when there is no limit."""
        with self._lock:
            if rate_per_s is None:
                self._buckets.pop(key, None)
                return 0.0
            now_s = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None or bucket.rate_per_s != rate_per_s:
                fresh = TokenBucket.full(
                    rate_per_s=rate_per_s, capacity=self.capacity(rate_per_s), now_s=now_s
                )
                if bucket is not None:
                    bucket.refill(now_s)
                    fresh.tokens = min(fresh.capacity, bucket.tokens)
                bucket = self._buckets[key] = fresh
            return bucket.take(cost, now_s=now_s)
