"""Pure micro-batching policy: how a worker turns buffered jobs into model batches.

No Celery, torch or I/O here, so it is tested exhaustively with hypothesis. The Celery
adapter (:mod:`workers.tasks`) only feeds it and acts on its answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from infq.bus.messages import chunked
from infq.errors import InfqError, PermanentFailure

T = TypeVar("T")
R = TypeVar("R")


def params_key(params: dict[str, Any]) -> str:
    """Canonical text of a params dict, so equal params group together."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def plan_batches(
    items: Iterable[T],
    *,
    max_batch_size: int,
    group_of: Callable[[T], Hashable],
    length_of: Callable[[T], int],
) -> list[list[T]]:
    """Split buffered items into model batches.

    Items only share a batch with items of the same group (model, task, params). Within
    a group they are sorted by length before cutting, so each batch pads to similar
    lengths: a transformer's cost follows the longest input of its batch.
    """
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be >= 1")
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    batches: list[list[T]] = []
    for members in groups.values():
        members.sort(key=length_of)
        batches.extend(list(c) for c in chunked(members, max_batch_size))
    return batches


@dataclass(frozen=True)
class Outcome(Generic[T, R]):
    """The result of one item, or the error that stopped it."""

    item: T
    result: R | None = None
    error: PermanentFailure | None = None


def run_bisecting(
    items: Sequence[T], run: Callable[[Sequence[T]], Sequence[R]]
) -> list[Outcome[T, R]]:
    """Run a batch; when it raises, split it in halves until the bad items are isolated.

    One poisoned input must not fail its neighbours: a failing batch of n items costs at
    most about 2·log2(n) extra calls per bad item, and good items still get results. A
    batch that returns the wrong number of results is treated as a failure.
    """
    if not items:
        return []
    try:
        results = one_each(run(items), items)
    except Exception as e:
        if len(items) == 1:
            return [Outcome(item=items[0], error=as_failure(e))]
        middle = len(items) // 2
        return run_bisecting(items[:middle], run) + run_bisecting(items[middle:], run)
    return [Outcome(item=i, result=r) for i, r in zip(items, results, strict=True)]


def one_each(results: Iterable[R], items: Sequence[T]) -> list[R]:
    """A model's results, refused unless there is exactly one per input."""
    found = list(results)
    if len(found) != len(items):
        raise InfqError(f"model returned {len(found)} results for {len(items)} inputs")
    return found


def as_failure(error: Exception) -> PermanentFailure:
    """The job-level error recorded for an exception raised by a model."""
    if isinstance(error, PermanentFailure):
        return error
    return PermanentFailure("model_error", f"{type(error).__name__}: {error}")
