"""The token bucket behind per-tenant submission rates (:mod:`infq.tenants.ratelimit`), with a
clock driven by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.tenants.ratelimit import RateLimiter, TokenBucket


class Clock:
    """Seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_full_bucket_admits_its_burst_then_waits_for_the_rate() -> None:
    bucket = TokenBucket.full(rate_per_s=2.0, capacity=4.0, now_s=0.0)
    assert [bucket.take(1, now_s=0.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take(1, now_s=0.0) == pytest.approx(0.5)
    assert bucket.take(1, now_s=0.25) == pytest.approx(0.25)  # a refusal takes nothing
    assert bucket.take(1, now_s=0.5) == 0.0


def test_a_request_larger_than_the_bucket_passes_when_full_and_leaves_a_debt() -> None:
    bucket = TokenBucket.full(rate_per_s=10.0, capacity=10.0, now_s=0.0)
    assert bucket.take(100, now_s=0.0) == 0.0  # refusing it would refuse it forever
    # 90 jobs of debt, then 10 for the next request: 10 s at 10 jobs/s
    assert bucket.take(10, now_s=0.0) == pytest.approx(10.0)
    assert bucket.take(10, now_s=9.9) > 0
    assert bucket.take(10, now_s=10.0) == 0.0


def test_time_running_backwards_earns_nothing() -> None:
    bucket = TokenBucket.full(rate_per_s=1.0, capacity=1.0, now_s=10.0)
    assert bucket.take(1, now_s=10.0) == 0.0
    assert bucket.take(1, now_s=5.0) == pytest.approx(1.0)


def test_a_bucket_needs_a_positive_rate_and_capacity() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket.full(rate_per_s=0.0, capacity=1.0, now_s=0.0)


requests = st.lists(
    st.tuples(st.floats(0, 5, allow_nan=False), st.integers(1, 20)), min_size=1, max_size=60
)


@given(
    rate_per_s=st.floats(0.1, 100, allow_nan=False),
    capacity=st.floats(1, 50, allow_nan=False),
    steps=requests,
)
def test_admitted_jobs_never_exceed_the_burst_plus_the_rate(
    rate_per_s: float, capacity: float, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket.full(rate_per_s=rate_per_s, capacity=capacity, now_s=0.0)
    now_s, admitted, largest = 0.0, 0, 0
    for gap_s, cost in steps:
        now_s += gap_s
        if bucket.take(cost, now_s=now_s) == 0.0:
            admitted += cost
            largest = max(largest, cost)
    # The debt rule lets one request overdraw by at most its own size.
    assert admitted <= capacity + rate_per_s * now_s + largest + 1e-6


@given(
    rate_per_s=st.floats(0.1, 100, allow_nan=False),
    capacity=st.floats(1, 50, allow_nan=False),
    steps=requests,
)
def test_a_refused_request_passes_after_the_wait_it_was_given(
    rate_per_s: float, capacity: float, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket.full(rate_per_s=rate_per_s, capacity=capacity, now_s=0.0)
    now_s = 0.0
    for gap_s, cost in steps:
        now_s += gap_s
        wait_s = bucket.take(cost, now_s=now_s)
        if wait_s > 0:
            assert bucket.take(cost, now_s=now_s + wait_s) == 0.0
            now_s += wait_s


def test_the_limiter_keeps_one_bucket_per_tenant() -> None:
    clock = Clock()
    limiter = RateLimiter(burst_s=1.0, clock=clock)
    assert limiter.take("a", 5, rate_per_s=5.0) == 0.0
    assert limiter.take("a", 1, rate_per_s=5.0) == pytest.approx(0.2)
    assert limiter.take("b", 5, rate_per_s=5.0) == 0.0  # another tenant, another bucket
    clock.now_s += 0.2
    assert limiter.take("a", 1, rate_per_s=5.0) == 0.0


def test_the_burst_is_at_least_one_job() -> None:
    limiter = RateLimiter(burst_s=1.0, clock=Clock())
    assert limiter.capacity(0.1) == 1.0
    assert limiter.take("slow", 1, rate_per_s=0.1) == 0.0
    assert limiter.take("slow", 1, rate_per_s=0.1) == pytest.approx(10.0)


def test_no_rate_admits_everything_and_a_new_rate_applies_at_once() -> None:
    clock = Clock()
    limiter = RateLimiter(burst_s=2.0, clock=clock)
    assert all(limiter.take("t", 1000, rate_per_s=None) == 0.0 for _ in range(3))
    assert limiter.take("t", 2, rate_per_s=1.0) == 0.0
    assert limiter.take("t", 1, rate_per_s=1.0) == pytest.approx(1.0)
    # Raised to 10 jobs/s: the empty bucket stays empty, and fills ten times faster
    assert limiter.take("t", 1, rate_per_s=10.0) == pytest.approx(0.1)
    # Limit removed, then set again: a fresh, full bucket
    assert limiter.take("t", 1, rate_per_s=None) == 0.0
    assert limiter.take("t", 2, rate_per_s=1.0) == 0.0
