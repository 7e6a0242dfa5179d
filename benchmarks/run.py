"""``infq bench`` / ``make bench``: every figure of the performance issue in one run.

Needs the local stack (``infq stack up``) or external services; creates a fresh infq
on them (:mod:`benchmarks.world`), runs (a) to (g) in order, and writes the report under
``benchmarks/results/``. Ratios compare phases of the same run, because a shared
machine's speed drifts between runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from benchmarks import phases as ph
from benchmarks.growth import Growth, GrowthSizes, jobs_table_over_time
from benchmarks.report import targets, write
from benchmarks.world import World
from infq.settings import Settings
from workers.adapters.base import resolve_device

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Sizes:
    """How much each phase runs."""

    jobs: int = 2000  # (a), (b) burst, (e)
    sustained_s: float = 30.0  # (b) sustained and (f) half load
    echo_jobs: int = 10000  # (c)
    naive_jobs: int = 400  # (d)
    growth: GrowthSizes = field(default_factory=GrowthSizes)  # (g)

    @classmethod
    def smoke(cls) -> Sizes:
        """CI: every phase, a few seconds each."""
        growth = GrowthSizes(duration_s=12.0, rate_jobs_per_s=100.0, retention_s=3.0,
                             sample_every_s=1.0)  # fmt: skip
        return cls(jobs=128, sustained_s=3.0, echo_jobs=500, naive_jobs=24, growth=growth)


def run(base: Settings, *, sizes: Sizes, out: Path, console: Console) -> dict[str, Path]:
    """Run every phase and write the report; returns the files written."""
    world = World.create(base, logs=out / "logs")
    s = world.settings
    device = resolve_device(s.device)
    found: dict[str, ph.Phase] = {}
    try:
        console.print(f"[bold](a)[/] raw model loop over {sizes.jobs} unique texts")
        texts = ph.unique_texts(sizes.jobs, "b")
        found["a"], _ = ph.raw_loop(texts, batch_size=s.max_batch_size, device=device)
        world.start("worker", ["infq", "worker", "--model", ph.MODEL, "--model", "echo",
                               "--concurrency", "1"])  # fmt: skip
        world.start("dispatcher", ["infq", "dispatcher"])
        world.wait_for_workers(2)
        console.print("[bold](b)[/] end to end, burst")
        found["b"] = ph.through_infq(s, world.sessions, key="b", name="end to end, burst",
                                     texts=texts)  # fmt: skip
        found["b"].inputs = found["a"].inputs
        rate = found["b"].jobs_per_s
        console.print(f"[bold](b)[/] end to end, sustained at {1.2 * rate:.0f} jobs/s offered")
        steady = ph.unique_texts(max(1, int(1.2 * rate * sizes.sustained_s)), "s")
        found["b2"] = ph.through_infq(s, world.sessions, key="b2", name="end to end, sustained",
                                      texts=steady, rate_jobs_per_s=1.2 * rate)  # fmt: skip
        found["b2"].note = f"offered {1.2 * rate:.0f} jobs/s for {sizes.sustained_s:.0f} s"
        console.print(f"[bold](c)[/] echo end to end, {sizes.echo_jobs} jobs")
        found["c"] = ph.through_infq(s, world.sessions, key="c", name="echo end to end",
                                     texts=ph.unique_texts(sizes.echo_jobs, "c"),
                                     model="echo")  # fmt: skip
        console.print(f"[bold](e)[/] cache hits, the burst's {sizes.jobs} texts again")
        found["e"] = ph.through_infq(s, world.sessions, key="e", name="cache hits", texts=texts)
        console.print(f"[bold](f)[/] half load: {rate / 2:.0f} jobs/s for {sizes.sustained_s} s")
        half = ph.unique_texts(max(1, int(rate / 2 * sizes.sustained_s)), "f")
        found["f"] = ph.through_infq(s, world.sessions, key="f", name="half load",
                                     texts=half, rate_jobs_per_s=rate / 2)  # fmt: skip
        found["f"].note = f"offered {rate / 2:.0f} jobs/s"
        # The naive worker gets the machine to itself: stop infq's processes first.
        world.stop_processes()
        console.print(f"[bold](d)[/] naive Celery, {sizes.naive_jobs} jobs")
        world.start("naive-worker", ["benchmarks.naive"])
        found["d"] = ph.naive_celery(
            s, world.sessions, texts[: sizes.naive_jobs], check=world.check_alive
        )
    finally:
        world.stop()
    console.print(f"[bold](g)[/] the jobs table over {sizes.growth.duration_s:.0f} s "
                  f"under a {sizes.growth.retention_s:.0f} s job retention")  # fmt: skip
    growth: Growth = jobs_table_over_time(base, sizes=sizes.growth, logs=out / "logs")
    order = ["a", "b", "b2", "c", "d", "e", "f"]
    phases = {k: found[k] for k in order if k in found}
    goals = targets(phases, max_wait_s=s.max_wait_ms / 1000, batch_size=s.max_batch_size,
                    growth=growth)  # fmt: skip
    config = {"device": device, "max_batch_size": s.max_batch_size, "max_wait_ms": s.max_wait_ms,
              "sizes": asdict(sizes), "started": time.strftime("%H:%M:%S")}  # fmt: skip
    return write(out, phases, goals, config=config, growth=growth)
