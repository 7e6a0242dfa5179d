"""Webhook retry policy: which responses are retried, and how long to wait between tries.

Kept apart from the HTTP client and the task queue so that the rules can be read in one
place and tested exhaustively. A receiver that is down or overloaded (5xx, 408, 429, a
timeout, a refused connection) gets more attempts with exponential backoff; a receiver
that refuses the request itself (other 4xx) would refuse it again, so the delivery is
dead at once. Redirects are not followed on purpose: a redirect could point the worker
at a private address that the callback URL check never saw. Pure: no I/O, and the random
source is passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from infq.errors import ConfigurationError

# 2.0 ** 1024 overflows a float; far beyond any max_delay_s anyway.
_MAX_EXPONENT = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a webhook is tried and how long infq waits between tries."""

    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay_s <= 0 or self.timeout_s <= 0:
            raise ConfigurationError(
                f"base_delay_s and timeout_s must be positive, got {self.base_delay_s} "
                f"and {self.timeout_s}"
            )
        if self.max_delay_s < self.base_delay_s:
            raise ConfigurationError(
                f"max_delay_s ({self.max_delay_s}) must not be below base_delay_s "
                f"({self.base_delay_s})"
            )


class Outcome(StrEnum):
    """What becomes of a delivery after one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


def classify(*, status_code: int | None, error: str | None) -> Outcome:
    """The outcome of one attempt, from its HTTP status or its transport error.

    A status code wins over an error; neither at all is not a valid attempt (DEAD).
    """
    if status_code is None:
        # Timeouts and connection failures: the receiver may be back soon.
        return Outcome.RETRY if error is not None else Outcome.DEAD
    if 200 <= status_code <= 299:
        return Outcome.DELIVERED
    if status_code in (408, 429) or 500 <= status_code <= 599:
        return Outcome.RETRY
    # Other 4xx, 3xx (redirects are not followed, see the module docstring), 1xx, nonsense.
    return Outcome.DEAD


def next_step(*, outcome: Outcome, attempt: int, policy: RetryPolicy) -> Outcome:
    """``outcome``, except that a retry after the last allowed attempt is DEAD.

    ``attempt`` counts the attempts made so far, the one just classified included (1-based).
    """
    if outcome is Outcome.RETRY and attempt >= policy.max_attempts:
        return Outcome.DEAD
    return outcome


def backoff_s(*, attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait after attempt number ``attempt`` (1-based) before the next one.

    Exponential with full jitter, so that many deliveries failing together do not retry
    together, but never below half the base delay, so that a retry is never immediate.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    cap_s = min(policy.max_delay_s, policy.base_delay_s * 2.0**exponent)
    return max(policy.base_delay_s / 2, rng.uniform(0, cap_s))
