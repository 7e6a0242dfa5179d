"""The autoscaling policy: a pure function of recent observations and the current worker
count to the number of workers wanted.

Work is measured in seconds, not jobs: ``jobs remaining / one worker's measured rate``
(jobs per second of compute), so a slow model scales out on fewer jobs than a fast one.

* need = ceil(work seconds / target seconds per worker), at least 1 while any job waits
  (activation from zero on the first job);
* up: straight to the need at once (a burst reaches the maximum in one decision);
* down: only to the highest need seen over the stabilization window, and by at most
  ``max_step_down`` per decision (noise never makes the pool flap);
* zero: one worker stays warm until no work was seen for ``idle_s``;
* always within [min_workers, max_workers].

The same numbers drive KEDA in ``deploy/k8s`` (threshold, cooldown, HPA behaviour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from infq.settings import Settings


@dataclass(frozen=True)
class PolicyParams:
    """The policy's knobs (``INFQ_AUTOSCALE_*``)."""

    min_workers: int = 0
    max_workers: int = 2
    target_work_s: float = 30.0
    idle_s: float = 60.0
    stabilization_s: float = 30.0
    max_step_down: int = 1
    default_rate_jobs_per_s: float = 20.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers or self.max_workers < 1:
            raise ValueError("need 0 <= min_workers <= max_workers and max_workers >= 1")
        if self.target_work_s <= 0 or self.default_rate_jobs_per_s <= 0:
            raise ValueError("target_work_s and default_rate_jobs_per_s must be positive")
        if self.max_step_down < 1 or self.idle_s < 0 or self.stabilization_s < 0:
            raise ValueError("max_step_down >= 1, idle_s >= 0 and stabilization_s >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicyParams:
        """The policy configured by ``settings``."""
        return cls(
            min_workers=settings.autoscale_min_workers,
            max_workers=settings.autoscale_max_workers,
            target_work_s=settings.autoscale_target_work_s,
            idle_s=settings.autoscale_idle_s,
            stabilization_s=settings.autoscale_stabilization_s,
            max_step_down=settings.autoscale_max_step_down,
            default_rate_jobs_per_s=settings.autoscale_default_rate_jobs_per_s,
        )


@dataclass(frozen=True)
class Observation:
    """What was measured at ``at_s`` (a monotonic clock)."""

    at_s: float
    work_jobs: int
    # One worker's measured rate in jobs per second of compute; None before any.
    rate_jobs_per_s: float | None = None


@dataclass(frozen=True)
class Decision:
    """The policy's answer, with the numbers behind it (for logs and the timeline)."""

    desired: int
    need: int
    work_s: float
    reason: str


@dataclass(frozen=True)
class PolicyState:
    """What the policy remembers between decisions."""

    needs: tuple[tuple[float, int], ...] = field(default=())
    last_work_at_s: float | None = None


def work_seconds(work_jobs: int, rate_jobs_per_s: float | None, params: PolicyParams) -> float:
    """Seconds one worker needs for ``work_jobs`` at the measured (or assumed) rate."""
    rate = rate_jobs_per_s if rate_jobs_per_s and rate_jobs_per_s > 0 else None
    return work_jobs / (rate or params.default_rate_jobs_per_s)


def decide(
    params: PolicyParams, state: PolicyState, obs: Observation, current: int
) -> tuple[Decision, PolicyState]:
    """The number of workers wanted after observing ``obs`` with ``current`` running."""
    work_s = work_seconds(obs.work_jobs, obs.rate_jobs_per_s, params)
    last_work = obs.at_s if obs.work_jobs > 0 else state.last_work_at_s
    recently_busy = last_work is not None and obs.at_s - last_work < params.idle_s

    need = math.ceil(work_s / params.target_work_s - 1e-9) if obs.work_jobs > 0 else 0
    if obs.work_jobs > 0:
        need = max(need, 1)
    elif recently_busy and current > 0:
        need = 1  # stay warm: a lull is not idleness
    need = min(max(need, params.min_workers), params.max_workers)

    window_start = obs.at_s - params.stabilization_s
    needs = (*((t, n) for t, n in state.needs if t >= window_start), (obs.at_s, need))
    new_state = PolicyState(needs=needs, last_work_at_s=last_work)

    if need > current:
        desired, reason = need, "scale up to the need"
    else:
        highest = max(n for _, n in needs)
        floor = max(highest, current - params.max_step_down)
        desired = min(current, floor)
        if desired == current:
            reason = "steady" if need == current else "holding: stabilization window"
        else:
            reason = "scale down" if desired == highest else "scale down: one step"
    desired = min(max(desired, params.min_workers), params.max_workers)
    return Decision(desired=desired, need=need, work_s=work_s, reason=reason), new_state
