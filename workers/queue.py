"""A bounded, adaptive batch queue: the worker's micro-batching policy, pure.

``put()`` adds work (and blocks while the queue is full, which is what bounds how much
a worker hoards); ``take()`` returns the next batch. Items only share a batch with
items of their group (a model revision), and each group has its own policy
(:class:`BatchPolicy`, from the model's catalogue entry). A group's batch is cut

* at once when it is full: ``max_batch_size`` items, or more waiting than fit in
  ``max_batch_tokens`` padded tokens (longest input times batch size);
* otherwise as soon as its oldest item has waited ``max_wait_s``, whatever is there.

So at low load a job waits at most ``max_wait_s``, and under a steady stream the work
that arrives while the model computes is all taken by the next batch: batches grow
with the load instead of being cut by a timer.

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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPolicy:
    """How one group's batches are cut."""

    max_batch_size: int
    max_wait_s: float
    max_batch_tokens: int | None = None


def wait_left_s(
    *, count: int, oldest_age_s: float, max_batch_size: int, max_wait_s: float
) -> float:
    """How long ``take`` should still wait before cutting (0: cut now)."""
    if count >= max_batch_size:
        return 0.0
    return max(0.0, max_wait_s - oldest_age_s)


def pick_batch(
    lengths: Sequence[int], *, max_batch_size: int, max_batch_tokens: int | None = None
) -> list[int]:
    """Indices (in arrival order) of the next batch: the oldest item (index 0) and the
    others nearest to it in length (ties: the older first), up to ``max_batch_size``
    items and, when given, ``max_batch_tokens`` padded tokens. The oldest item goes
    even when it alone exceeds the budget: nothing waits forever."""
    if len(lengths) <= max_batch_size and max_batch_tokens is None:
        return list(range(len(lengths)))
    anchor = lengths[0]
    others = sorted(range(1, len(lengths)), key=lambda i: (abs(lengths[i] - anchor), i))
    chosen, longest = [0], anchor
    for i in others:
        if len(chosen) >= max_batch_size:
            break
        padded = max(longest, lengths[i]) * (len(chosen) + 1)
        if max_batch_tokens is not None and padded > max_batch_tokens:
            continue
        chosen.append(i)
        longest = max(longest, lengths[i])
    return sorted(chosen)


@dataclass
class _Waiting(Generic[T]):
    at: float
    length: int
    item: T


class BatchQueue(Generic[T]):
    """Thread-safe FIFOs of work items per group, cut into batches by their policy."""

    def __init__(
        self,
        *,
        max_batch_size: int,
        max_wait_s: float,
        capacity: int,
        length_of: Callable[[T], int] = lambda _: 0,
        clock: Callable[[], float] = time.monotonic,
        group_of: Callable[[T], Hashable] = lambda _: None,
        policy_of: Callable[[Hashable], BatchPolicy] | None = None,
    ) -> None:
        if max_batch_size < 1 or capacity < 1:
            raise ValueError("max_batch_size and capacity must be >= 1")
        self.default = BatchPolicy(max_batch_size=max_batch_size, max_wait_s=max_wait_s)
        self.capacity = capacity
        self._length_of = length_of
        self._clock = clock
        self._group_of = group_of
        self._policy_of = policy_of or (lambda _: self.default)
        self._groups: dict[Hashable, deque[_Waiting[T]]] = {}
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return self._count

    def put(
        self,
        items: Sequence[T],
        *,
        timeout_s: float | None = None,
        lengths: Sequence[int] | None = None,
    ) -> bool:
        """Add ``items`` once there is room (a put may overshoot the capacity by itself).

        ``lengths`` (tokens, say) saves measuring each item again; returns False if the
        queue was closed or ``timeout_s`` passed first.
        """
        deadline = None if timeout_s is None else self._clock() + timeout_s
        sizes = list(lengths) if lengths is not None else [self._length_of(i) for i in items]
        with self._cond:
            while self._count >= self.capacity and not self._closed:
                left = None if deadline is None else deadline - self._clock()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            if self._closed:
                return False
            now = self._clock()
            for item, length in zip(items, sizes, strict=True):
                group = self._groups.setdefault(self._group_of(item), deque())
                group.append(_Waiting(now, length, item))
            self._count += len(items)
            self._cond.notify_all()
            return True

    def take(self, *, timeout_s: float, full_only: Callable[[], bool] = lambda: False) -> list[T]:
        """The next batch; empty if nothing arrived within ``timeout_s`` or closed.

        While ``full_only()`` is true only full batches are cut (a consumer with work in
        hand takes a batch ahead only when waiting could not make it bigger); call
        :meth:`wake` when its answer changes.
        """
        deadline = self._clock() + timeout_s
        with self._cond:
            while True:
                if self._closed:
                    return []
                now = self._clock()
                due = self._due(now, full_only=full_only())
                if due is not None and due[0] <= 0:
                    batch = self._cut(due[1])
                    self._cond.notify_all()
                    return batch
                # Wake for the next group due or the caller's deadline, whichever first.
                left = min(due[0], deadline - now) if due is not None else deadline - now
                if left <= 0:
                    return []
                self._cond.wait(left)

    def wake(self) -> None:
        """Make waiting takers look again (their ``full_only`` answer changed)."""
        with self._cond:
            self._cond.notify_all()

    def _due(self, now: float, *, full_only: bool = False) -> tuple[float, Hashable] | None:
        """The group to cut next and how long until then (oldest first on ties); with
        ``full_only``, only a full group is due."""
        best: tuple[float, float, Hashable] | None = None
        for key, waiting in self._groups.items():
            if not waiting:
                continue
            policy = self._policy_of(key)
            full = len(waiting) >= policy.max_batch_size or (
                policy.max_batch_tokens is not None
                and len(self._pick(waiting, policy)) < len(waiting)
            )
            if full_only and not full:
                continue
            left = 0.0 if full else max(0.0, policy.max_wait_s - (now - waiting[0].at))
            candidate = (left, waiting[0].at, key)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
        return None if best is None else (best[0], best[2])

    @staticmethod
    def _pick(waiting: deque[_Waiting[T]], policy: BatchPolicy) -> list[int]:
        return pick_batch(
            [w.length for w in waiting],
            max_batch_size=policy.max_batch_size,
            max_batch_tokens=policy.max_batch_tokens,
        )

    def _cut(self, key: Hashable) -> list[T]:
        waiting = list(self._groups[key])
        chosen = self._pick(self._groups[key], self._policy_of(key))
        taken = set(chosen)
        self._groups[key] = deque(w for i, w in enumerate(waiting) if i not in taken)
        if not self._groups[key]:
            del self._groups[key]
        self._count -= len(chosen)
        return [waiting[i].item for i in chosen]

    def snapshot(self) -> list[T]:
        """The items waiting now (for lease renewal)."""
        with self._cond:
            return [w.item for group in self._groups.values() for w in group]

    def close(self) -> list[T]:
        """Refuse further puts, wake every waiter, and return what was still waiting."""
        with self._cond:
            self._closed = True
            left = [w.item for group in self._groups.values() for w in group]
            self._groups.clear()
            self._count = 0
            self._cond.notify_all()
            return left
