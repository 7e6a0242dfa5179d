"""Webhook retry policy (:mod:`infq.webhooks.policy`): what is retried, and when."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.errors import ConfigurationError
from infq.webhooks.policy import Outcome, RetryPolicy, backoff_s, classify, next_step

POLICY = RetryPolicy()
policies = st.builds(
    lambda base, factor, attempts: RetryPolicy(
        max_attempts=attempts, base_delay_s=base, max_delay_s=base * factor
    ),
    st.floats(min_value=1e-3, max_value=1e3),
    st.floats(min_value=1, max_value=1e4),
    st.integers(min_value=1, max_value=20),
)


class Highest(random.Random):
    """A random source that always draws the top of the range: shows the cap."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


@pytest.mark.parametrize(
    ("status_code", "error", "expected"),
    [
        (200, None, Outcome.DELIVERED),
        (201, None, Outcome.DELIVERED),
        (204, None, Outcome.DELIVERED),
        (299, None, Outcome.DELIVERED),
        (None, "timeout", Outcome.RETRY),
        (None, "connection refused", Outcome.RETRY),
        (500, None, Outcome.RETRY),
        (502, None, Outcome.RETRY),
        (503, None, Outcome.RETRY),
        (599, None, Outcome.RETRY),
        (408, None, Outcome.RETRY),
        (429, None, Outcome.RETRY),
        (400, None, Outcome.DEAD),
        (401, None, Outcome.DEAD),
        (403, None, Outcome.DEAD),
        (404, None, Outcome.DEAD),
        (410, None, Outcome.DEAD),
        (422, None, Outcome.DEAD),
        (301, None, Outcome.DEAD),
        (302, None, Outcome.DEAD),
        (307, None, Outcome.DEAD),
        (308, None, Outcome.DEAD),
        (100, None, Outcome.DEAD),
        (199, None, Outcome.DEAD),
        (600, None, Outcome.DEAD),
        (0, None, Outcome.DEAD),
        (None, None, Outcome.DEAD),
        # The status code is what the receiver said; it wins over a client-side note.
        (200, "read error after headers", Outcome.DELIVERED),
        (404, "x", Outcome.DEAD),
    ],
)
def test_classify_table(status_code: int | None, error: str | None, expected: Outcome) -> None:
    assert classify(status_code=status_code, error=error) is expected


@given(st.integers(min_value=-1000, max_value=2000))
def test_classify_agrees_with_the_status_families(status_code: int) -> None:
    outcome = classify(status_code=status_code, error=None)

    if 200 <= status_code < 300:
        assert outcome is Outcome.DELIVERED
    elif 500 <= status_code < 600 or status_code in (408, 429):
        assert outcome is Outcome.RETRY
    else:
        assert outcome is Outcome.DEAD


def test_outcomes_are_strings_for_storage() -> None:
    assert [str(o) for o in Outcome] == ["delivered", "retry", "dead"]


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, Outcome.RETRY), (5, Outcome.RETRY), (6, Outcome.DEAD)]
)
def test_retry_turns_dead_after_the_last_attempt(attempt: int, expected: Outcome) -> None:
    assert next_step(outcome=Outcome.RETRY, attempt=attempt, policy=POLICY) is expected


@given(attempt=st.integers(min_value=1, max_value=100), policy=policies)
def test_next_step_only_ever_ends_retries(attempt: int, policy: RetryPolicy) -> None:
    for outcome in (Outcome.DELIVERED, Outcome.DEAD):
        assert next_step(outcome=outcome, attempt=attempt, policy=policy) is outcome
    retried = next_step(outcome=Outcome.RETRY, attempt=attempt, policy=policy)
    assert retried is (Outcome.DEAD if attempt >= policy.max_attempts else Outcome.RETRY)


def test_one_attempt_policy_never_retries() -> None:
    policy = RetryPolicy(max_attempts=1)

    assert next_step(outcome=Outcome.RETRY, attempt=1, policy=policy) is Outcome.DEAD


@given(attempt=st.integers(min_value=1, max_value=5000), policy=policies, seed=st.integers())
def test_backoff_stays_within_its_bounds(attempt: int, policy: RetryPolicy, seed: int) -> None:
    delay_s = backoff_s(attempt=attempt, policy=policy, rng=random.Random(seed))
    cap_s = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** min(attempt - 1, 1000))

    assert policy.base_delay_s / 2 <= delay_s <= max(cap_s, policy.base_delay_s / 2)
    assert delay_s <= policy.max_delay_s


@given(policy=policies)
def test_backoff_cap_doubles_until_the_maximum_and_never_shrinks(policy: RetryPolicy) -> None:
    caps = [backoff_s(attempt=a, policy=policy, rng=Highest()) for a in range(1, 40)]

    assert caps == sorted(caps)
    assert caps[0] == policy.base_delay_s
    assert caps[-1] == policy.max_delay_s
    for before, after in itertools.pairwise(caps):
        assert after == min(policy.max_delay_s, before * 2)


@given(attempt=st.integers(min_value=1, max_value=50), policy=policies)
def test_retry_is_never_immediate(attempt: int, policy: RetryPolicy) -> None:
    assert backoff_s(attempt=attempt, policy=policy, rng=Lowest()) == policy.base_delay_s / 2


def test_default_backoff_sequence() -> None:
    caps = [backoff_s(attempt=a, policy=POLICY, rng=Highest()) for a in range(1, 10)]

    assert caps == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_jitter_spreads_delays() -> None:
    rng = random.Random(7)
    delays = {backoff_s(attempt=6, policy=POLICY, rng=rng) for _ in range(100)}

    assert len(delays) > 50
    assert min(delays) < 16 < max(delays)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_attempts": 0},
        {"base_delay_s": 0},
        {"timeout_s": -1},
        {"base_delay_s": 10, "max_delay_s": 5},
    ],
)
def test_unusable_policies_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**changes)  # type: ignore[arg-type]
