"""A bounded, adaptive batch queue: the worker's micro-batching policy, pure.

``put()`` adds work (and blocks while the queue is full, which is what bounds how much
a worker hoards); ``take()`` returns the next batch:

* when at least ``max_batch_size`` items wait, a full batch at once;
* otherwise as soon as the oldest item has waited ``max_wait_s``, whatever is there.

So at low load a job waits at most ``max_wait_s``, and under a steady stream the work
that arrives while the model computes is all taken by the next batch (up to the batch
size): batches grow with the load instead of being cut by a timer.

When more than a batch waits, the batch is the oldest item plus the items closest to
it in length (:func:`pick_batch`): a transformer's cost follows the longest input of
its batch, so similar lengths waste less padding, and anchoring on the oldest item
means no item waits behind newer ones forever. No Celery, torch or I/O here; the
clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


def wait_left_s(
    *, count: int, oldest_age_s: float, max_batch_size: int, max_wait_s: float
) -> float:
    """How long ``take`` should still wait before cutting (0: cut now)."""
    if count >= max_batch_size:
        return 0.0
    return max(0.0, max_wait_s - oldest_age_s)


def pick_batch(lengths: Sequence[int], *, max_batch_size: int) -> list[int]:
    """Indices (in arrival order) of the next batch: the oldest item (index 0) and the
    ``max_batch_size - 1`` others nearest to it in length (ties: the older first)."""
    if len(lengths) <= max_batch_size:
        return list(range(len(lengths)))
    anchor = lengths[0]
    others = sorted(range(1, len(lengths)), key=lambda i: (abs(lengths[i] - anchor), i))
    return sorted([0, *others[: max_batch_size - 1]])


class BatchQueue(Generic[T]):
    """Thread-safe FIFO of work items, cut into batches by :func:`wait_left_s`."""

    def __init__(
        self,
        *,
        max_batch_size: int,
        max_wait_s: float,
        capacity: int,
        length_of: Callable[[T], int] = lambda _: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1 or capacity < 1:
            raise ValueError("max_batch_size and capacity must be >= 1")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.capacity = capacity
        self._length_of = length_of
        self._clock = clock
        self._items: deque[tuple[float, T]] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, items: Sequence[T], *, timeout_s: float | None = None) -> bool:
        """Add ``items`` once there is room (a put may overshoot the capacity by itself).

        Returns False if the queue was closed or ``timeout_s`` passed first.
        """
        deadline = None if timeout_s is None else self._clock() + timeout_s
        with self._cond:
            while len(self._items) >= self.capacity and not self._closed:
                left = None if deadline is None else deadline - self._clock()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            if self._closed:
                return False
            now = self._clock()
            self._items.extend((now, item) for item in items)
            self._cond.notify_all()
            return True

    def take(self, *, timeout_s: float) -> list[T]:
        """The next batch; empty if nothing arrived within ``timeout_s`` or closed."""
        deadline = self._clock() + timeout_s
        with self._cond:
            while True:
                if self._closed:
                    return []
                now = self._clock()
                if self._items:
                    left = wait_left_s(
                        count=len(self._items),
                        oldest_age_s=now - self._items[0][0],
                        max_batch_size=self.max_batch_size,
                        max_wait_s=self.max_wait_s,
                    )
                    if left <= 0:
                        batch = self._cut()
                        self._cond.notify_all()
                        return batch
                else:
                    left = deadline - now
                    if left <= 0:
                        return []
                self._cond.wait(left)

    def _cut(self) -> list[T]:
        waiting = list(self._items)
        chosen = pick_batch(
            [self._length_of(item) for _, item in waiting], max_batch_size=self.max_batch_size
        )
        taken = set(chosen)
        self._items = deque(entry for i, entry in enumerate(waiting) if i not in taken)
        return [waiting[i][1] for i in chosen]

    def snapshot(self) -> list[T]:
        """The items waiting now (for lease renewal)."""
        with self._cond:
            return [item for _, item in self._items]

    def close(self) -> list[T]:
        """Refuse further puts, wake every waiter, and return what was still waiting."""
        with self._cond:
            self._closed = True
            left = [item for _, item in self._items]
            self._items.clear()
            self._cond.notify_all()
            return left
