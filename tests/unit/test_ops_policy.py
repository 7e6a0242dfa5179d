"""Properties of the autoscaling policy (pure; hypothesis)."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from infq.ops.policy import Decision, Observation, PolicyParams, PolicyState, decide

params_st = st.builds(
    PolicyParams,
    min_workers=st.integers(0, 3),
    max_workers=st.integers(3, 12),
    target_work_s=st.floats(1.0, 120.0),
    idle_s=st.floats(0.0, 120.0),
    stabilization_s=st.floats(0.0, 60.0),
    max_step_down=st.integers(1, 3),
    default_rate_jobs_per_s=st.floats(1.0, 500.0),
)
works_st = st.lists(st.integers(0, 50_000), min_size=1, max_size=80)
rates_st = st.one_of(st.none(), st.floats(0.5, 1000.0))


def run(
    params: PolicyParams, works: list[int], *, rate: float | None, interval_s: float = 1.0,
    start: int = 0,
) -> list[tuple[float, int, Decision]]:  # fmt: skip
    """Feed observations every ``interval_s``; the actuator follows each decision."""
    state, current, out = PolicyState(), start, []
    for i, work in enumerate(works):
        at = i * interval_s
        decision, state = decide(params, state, Observation(at, work, rate), current)
        current = decision.desired
        out.append((at, work, decision))
    return out


@given(params_st, works_st, rates_st, st.integers(0, 15))
def test_never_outside_bounds(
    params: PolicyParams, works: list[int], rate: float | None, start: int
) -> None:
    for _, _, d in run(params, works, rate=rate, start=start):
        assert params.min_workers <= d.desired <= params.max_workers


@given(params_st, works_st, rates_st)
def test_work_waiting_always_has_a_worker(
    params: PolicyParams, works: list[int], rate: float | None
) -> None:
    for _, work, d in run(params, works, rate=rate):
        if work > 0:
            assert d.desired >= 1


@given(params_st, works_st, rates_st)
def test_no_flapping(params: PolicyParams, works: list[int], rate: float | None) -> None:
    """After an increase, no decrease within the stabilization window; a decrease is at
    most max_step_down, whatever the noise."""
    last_up_at: float | None = None
    previous = 0
    for at, _, d in run(params, works, rate=rate):
        if d.desired > previous:
            last_up_at = at
        if d.desired < previous:
            assert previous - d.desired <= params.max_step_down
            assert last_up_at is None or at - last_up_at > params.stabilization_s
        previous = d.desired


@given(
    st.integers(0, 50_000).flatmap(
        lambda base: st.lists(
            st.floats(0.8, 1.2).map(lambda f: int(base * f)), min_size=40, max_size=120
        )
    ),
    st.floats(1.0, 100.0),
)
def test_noisy_steady_load_settles(works: list[int], rate: float) -> None:
    """±20 % noise on a steady load moves the pool by at most one step after settling."""
    params = PolicyParams(min_workers=1, max_workers=20, stabilization_s=30.0)
    decisions = [d.desired for _, _, d in run(params, works, rate=rate)]
    settled = decisions[len(decisions) // 3 :]
    assert max(settled) - min(settled) <= max(1, math.ceil(max(settled) * 0.25))
    changes = sum(1 for a, b in itertools.pairwise(settled) if a != b)
    assert changes <= len(settled) / 10 + 2


@given(params_st, st.integers(0, 5), rates_st)
def test_step_burst_reaches_max_within_two_decisions(
    params: PolicyParams, idle_decisions: int, rate: float | None
) -> None:
    per_worker = rate or params.default_rate_jobs_per_s
    burst = math.ceil(params.max_workers * params.target_work_s * per_worker) + 1
    works = [0] * idle_decisions + [burst, burst]
    decisions = [d.desired for _, _, d in run(params, works, rate=rate)]
    assert decisions[-1] == params.max_workers


@given(params_st, st.integers(1, 10_000), rates_st)
@settings(max_examples=200)
def test_scales_to_zero_only_after_the_idle_period(
    params: PolicyParams, burst: int, rate: float | None
) -> None:
    works = [burst] * 3 + [0] * 200
    for at, _, d in run(params, works, rate=rate):
        last_work_at = 2.0
        if d.desired == 0 and at > last_work_at:
            assert at - last_work_at >= params.idle_s
    final = run(params, works, rate=rate)[-1][2].desired
    assert final == params.min_workers


def test_first_job_activates_from_zero() -> None:
    params = PolicyParams(min_workers=0, max_workers=4)
    d, _ = decide(params, PolicyState(), Observation(0.0, 1, None), 0)
    assert d.desired == 1


def test_work_is_counted_in_seconds_at_the_measured_rate() -> None:
    params = PolicyParams(max_workers=10, target_work_s=10.0)
    # 1,000 jobs: 100 s of work at 10 jobs/s (10 workers), 1 s at 1,000 jobs/s (1 worker)
    slow, _ = decide(params, PolicyState(), Observation(0.0, 1000, 10.0), 0)
    fast, _ = decide(params, PolicyState(), Observation(0.0, 1000, 1000.0), 0)
    assert (slow.desired, fast.desired) == (10, 1)
    assert slow.work_s == 100.0
