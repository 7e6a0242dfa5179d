"""The worker's adaptive batch queue (pure policy, no I/O)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.queue import BatchQueue, pick_batch, wait_left_s


@given(
    count=st.integers(0, 500),
    age_s=st.floats(0, 10),
    max_batch=st.integers(1, 256),
    max_wait_s=st.floats(0, 5),
)
def test_wait_is_zero_for_a_full_batch_and_never_beyond_max_wait(
    count: int, age_s: float, max_batch: int, max_wait_s: float
) -> None:
    left = wait_left_s(
        count=count, oldest_age_s=age_s, max_batch_size=max_batch, max_wait_s=max_wait_s
    )
    assert 0 <= left <= max_wait_s
    if count >= max_batch or age_s >= max_wait_s:
        assert left == 0


@given(puts=st.lists(st.integers(1, 40), min_size=1, max_size=30), max_batch=st.integers(1, 64))
def test_every_item_is_taken_once_in_order_in_batches_of_at_most_the_size(
    puts: list[int], max_batch: int
) -> None:
    queue: BatchQueue[int] = BatchQueue(max_batch_size=max_batch, max_wait_s=0, capacity=10_000)
    sent = 0
    for n in puts:
        assert queue.put(list(range(sent, sent + n)))
        sent += n
    taken: list[int] = []
    while len(taken) < sent:
        batch = queue.take(timeout_s=0)
        assert 0 < len(batch) <= max_batch
        taken += batch
    assert taken == list(range(sent))


def test_work_that_piled_up_while_computing_is_one_full_batch() -> None:
    # Given a queue that waits up to an hour for a batch to fill
    queue: BatchQueue[int] = BatchQueue(max_batch_size=64, max_wait_s=3600, capacity=256)
    # When 100 jobs arrived while the model was busy
    queue.put(list(range(40)))
    queue.put(list(range(40, 100)))
    # Then the next batch takes a full 64 at once, without waiting
    assert queue.take(timeout_s=0) == list(range(64))


def test_a_lone_job_is_cut_after_max_wait_not_before() -> None:
    now = [0.0]
    queue: BatchQueue[int] = BatchQueue(
        max_batch_size=64, max_wait_s=0.05, capacity=256, clock=lambda: now[0]
    )
    queue.put([1])
    now[0] = 0.049
    assert len(queue) == 1
    now[0] = 0.05
    assert queue.take(timeout_s=0) == [1]


def test_put_blocks_while_full_and_close_hands_back_what_waits() -> None:
    queue: BatchQueue[int] = BatchQueue(max_batch_size=4, max_wait_s=0, capacity=4)
    assert queue.put([1, 2, 3, 4])
    assert not queue.put([5], timeout_s=0.01)  # full: the caller (a Celery task) waits
    released = threading.Event()

    def blocked_put() -> None:
        assert not queue.put([6])  # woken by close, refused
        released.set()

    thread = threading.Thread(target=blocked_put)
    thread.start()
    assert queue.close() == [1, 2, 3, 4]
    thread.join(timeout=5)
    assert released.is_set()
    assert queue.take(timeout_s=0) == []


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        BatchQueue(max_batch_size=0, max_wait_s=0, capacity=1)


@given(lengths=st.lists(st.integers(0, 1000), min_size=1, max_size=300), size=st.integers(1, 64))
def test_a_batch_always_holds_the_oldest_and_its_nearest_lengths(
    lengths: list[int], size: int
) -> None:
    chosen = pick_batch(lengths, max_batch_size=size)
    assert chosen[0] == 0  # the oldest never waits behind newer items
    assert len(chosen) == min(size, len(lengths))
    assert chosen == sorted(set(chosen))
    left_out = set(range(len(lengths))) - set(chosen)
    worst_in = max(abs(lengths[i] - lengths[0]) for i in chosen)
    assert all(abs(lengths[i] - lengths[0]) >= worst_in for i in left_out)


def test_the_queue_cuts_similar_lengths_together() -> None:
    queue: BatchQueue[str] = BatchQueue(max_batch_size=2, max_wait_s=0, capacity=100, length_of=len)
    queue.put(["ccc", "a", "bbbbbbbbb", "ddd", "ee"])
    assert queue.take(timeout_s=0) == ["ccc", "ddd"]
    assert queue.take(timeout_s=0) == ["a", "ee"]
    assert queue.take(timeout_s=0) == ["bbbbbbbbb"]


@given(
    lengths=st.lists(st.integers(1, 500), min_size=1, max_size=200),
    size=st.integers(1, 64),
    budget=st.integers(1, 5000),
)
def test_a_token_budget_bounds_the_padded_batch_but_never_starves_the_oldest(
    lengths: list[int], size: int, budget: int
) -> None:
    chosen = pick_batch(lengths, max_batch_size=size, max_batch_tokens=budget)
    assert chosen[0] == 0
    assert len(chosen) <= size
    if len(chosen) > 1:
        assert max(lengths[i] for i in chosen) * len(chosen) <= budget


def test_a_full_token_budget_cuts_at_once_and_groups_never_mix() -> None:
    from workers.queue import BatchPolicy

    policies = {
        "long": BatchPolicy(max_batch_size=64, max_wait_s=3600, max_batch_tokens=100),
        "short": BatchPolicy(max_batch_size=64, max_wait_s=0.01),
    }
    now = [0.0]
    queue: BatchQueue[tuple[str, int]] = BatchQueue(
        max_batch_size=64,
        max_wait_s=3600,
        capacity=1000,
        clock=lambda: now[0],
        group_of=lambda item: item[0],
        policy_of=lambda group: policies[str(group)],
    )
    # Given 5 inputs of 40 tokens for a model with a 100-token budget, and one short job
    queue.put([("long", n) for n in range(5)], lengths=[40] * 5)
    queue.put([("short", 0)], lengths=[3])
    # Then the budget makes a batch of 2 (80 padded tokens) at once, of one group only
    assert queue.take(timeout_s=0) == [("long", 0), ("long", 1)]
    assert queue.take(timeout_s=0) == [("long", 2), ("long", 3)]
    # And the short job's own max wait cuts it, while one long input waits its hour
    now[0] = 0.02
    assert queue.take(timeout_s=0) == [("short", 0)]
    assert queue.take(timeout_s=0) == []
    assert len(queue) == 1


def test_while_the_device_is_busy_only_a_full_batch_is_cut_ahead() -> None:
    now = [0.0]
    queue: BatchQueue[int] = BatchQueue(
        max_batch_size=4, max_wait_s=0.05, capacity=100, clock=lambda: now[0]
    )
    busy = [True]
    # Given three jobs that have waited past max_wait while the device computes
    queue.put([1, 2, 3])
    now[0] = 1.0
    # Then no partial batch is cut ahead: it may still grow
    assert queue.take(timeout_s=0, full_only=lambda: busy[0]) == []
    # When a fourth arrives the batch is full and is cut ahead at once
    queue.put([4, 5])
    assert queue.take(timeout_s=0, full_only=lambda: busy[0]) == [1, 2, 3, 4]
    # And once the device is free, the partial rest is cut when past its max wait
    busy[0] = False
    assert queue.take(timeout_s=0, full_only=lambda: busy[0]) == []
    now[0] = 2.0
    assert queue.take(timeout_s=0, full_only=lambda: busy[0]) == [5]


def test_wake_lets_a_waiting_taker_cut_when_the_device_frees() -> None:
    queue: BatchQueue[int] = BatchQueue(max_batch_size=4, max_wait_s=0, capacity=100)
    busy = threading.Event()
    busy.set()
    queue.put([1])
    taken: list[list[int]] = []
    taker = threading.Thread(
        target=lambda: taken.append(queue.take(timeout_s=30, full_only=busy.is_set))
    )
    taker.start()
    taker.join(timeout=0.2)
    assert taker.is_alive()  # a partial batch waits while the device is busy
    busy.clear()
    queue.wake()
    taker.join(timeout=5)
    assert taken == [[1]]
