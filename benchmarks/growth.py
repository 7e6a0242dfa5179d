"""(g) The jobs table over a long run: does it stay flat once retention keeps pace?

An infq of its own (:class:`~benchmarks.world.World`) with a short job retention is fed
echo jobs at a steady rate for the whole run; the jobs table's rows and its size on
disk (table, indexes and TOAST: ``pg_total_relation_size``) are sampled as it goes.
Without retention both grow with every job forever (issue 19); with it the rows level
off at about rate x (retention + one retention interval), and the size levels off once
autovacuum hands the deleted rows' space back for reuse. The figure reported is the
growth from the end of the first third of the run (retention has caught up by then) to
the end: about 1.0 is flat, while an unbounded table would show the run's length.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.world import World
from infq.settings import Settings
from producers.sdk import JobProducer

SECONDS_PER_DAY = 86_400.0
OPEN = text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
SIZE = text(
    "SELECT (SELECT count(*) FROM jobs), pg_total_relation_size('jobs'), "
    "pg_relation_size('jobs'), pg_indexes_size('jobs'), "
    "(SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs')"
)
FAILED = text("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")


@dataclass(frozen=True)
class GrowthSizes:
    """How long and how hard (g) runs."""

    duration_s: float = 360.0
    rate_jobs_per_s: float = 500.0
    retention_s: float = 15.0
    sample_every_s: float = 10.0


@dataclass
class Growth:
    """The samples of (g), and what they show."""

    sizes: GrowthSizes
    samples: list[dict[str, float]] = field(default_factory=list)
    submitted: int = 0
    failed: int = 0

    @property
    def growth(self) -> float:
        """Table size at the end / at the end of the first third (1.0: flat)."""
        if len(self.samples) < 3:
            return 0.0
        third = self.samples[len(self.samples) // 3]["table_bytes"]
        return self.samples[-1]["table_bytes"] / third if third else 0.0

    @property
    def deleted(self) -> int:
        """Jobs submitted that retention has deleted by the end."""
        return self.submitted - int(self.samples[-1]["rows"]) if self.samples else 0

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {"sizes": asdict(self.sizes), "samples": self.samples,
                "submitted": self.submitted, "deleted": self.deleted, "failed": self.failed,
                "growth": round(self.growth, 3)}  # fmt: skip

    def markdown(self) -> str:
        """A short table for the report: rows and MiB at a few points of the run."""
        s = self.sizes
        last = self.samples[-1] if self.samples else {"heap_bytes": 0, "index_bytes": 0}
        lines = [
            f"(g) jobs table over {s.duration_s:.0f} s of echo jobs at {s.rate_jobs_per_s:.0f} "
            f"jobs/s, job retention {s.retention_s:.0f} s: {self.submitted:,} submitted, "
            f"{self.deleted:,} deleted by retention, {self.failed} not succeeded; size at the "
            f"end / after the first third: **{self.growth:.2f}** (at the end: heap "
            f"{last['heap_bytes'] / 2**20:.1f} MiB, indexes "
            f"{last['index_bytes'] / 2**20:.1f} MiB).",
            "",
            "| at (s) | submitted | rows | jobs table (MiB) |",
            "|---|---|---|---|",
        ]
        step = max(1, len(self.samples) // 6)
        shown = self.samples[::step] + ([self.samples[-1]] if len(self.samples) % step != 1 else [])
        for p in shown:
            lines.append(f"| {p['at_s']:.0f} | {int(p['submitted']):,} | {int(p['rows']):,} | "
                         f"{p['table_bytes'] / 2**20:.1f} |")  # fmt: skip
        return "\n".join(lines) + "\n"


def jobs_table_over_time(base: Settings, *, sizes: GrowthSizes, logs: Path) -> Growth:
    """Run (g) on a world of its own (so the short retention touches no other phase)."""
    world = World.create(base, logs=logs, extra={
        "INFQ_JOB_RETENTION_DAYS": repr(sizes.retention_s / SECONDS_PER_DAY),
        "INFQ_RETENTION_INTERVAL_S": "2",
    })  # fmt: skip
    found = Growth(sizes)
    try:
        world.start("growth-worker", ["infq", "worker", "--model", "echo"])
        world.start("growth-dispatcher", ["infq", "dispatcher"])
        world.wait_for_workers(1)
        started = next_sample = time.monotonic()
        with JobProducer(world.settings.kafka, topic=world.settings.jobs_topic) as producer:
            while (elapsed := time.monotonic() - started) < sizes.duration_s:
                due = int(elapsed * sizes.rate_jobs_per_s) + 1
                if due > found.submitted:
                    texts = [f"growth {n}" for n in range(found.submitted, due)]
                    producer.submit_many(texts, model="echo")
                    found.submitted = due
                if time.monotonic() >= next_sample:
                    found.samples.append(_sample(world, elapsed, found.submitted))
                    next_sample += sizes.sample_every_s
                    world.check_alive()
                time.sleep(0.02)
        _drain(world, timeout_s=120)
        found.samples.append(_sample(world, time.monotonic() - started, found.submitted))
        with world.sessions() as session:
            found.failed = int(session.scalar(FAILED) or 0)
    finally:
        world.stop()
    return found


def _sample(world: World, at_s: float, submitted: int) -> dict[str, float]:
    with world.sessions() as session:
        rows, size, heap, indexes, vacuums = session.execute(SIZE).one()
    return {"at_s": round(at_s, 1), "submitted": submitted, "rows": int(rows),
            "table_bytes": int(size), "heap_bytes": int(heap), "index_bytes": int(indexes),
            "autovacuums": int(vacuums or 0)}  # fmt: skip


def _drain(world: World, *, timeout_s: float) -> None:
    """Until no job is open twice, 2 s apart (the last records have been dispatched and
    their jobs have finished)."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        with world.sessions() as session:
            quiet = 0 if session.scalar(OPEN) else quiet + 1
        if quiet >= 2:
            return
        world.check_alive()
        time.sleep(2.0)
    raise TimeoutError(f"(g) jobs still open after {timeout_s:.0f} s; see {world.logs}")
