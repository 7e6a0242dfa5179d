"""Work remaining, per model: one function, one metric family.

Stages of a job not yet final (see :mod:`infq.db.scheduling`):

* ``kafka`` — on ``infq.jobs`` past the dispatcher group's committed offset (model
  unknown until decoded: counted for every model's scaling, labelled ``model=""``);
* ``ready``, ``handed_out``, ``held``, ``computing`` — in Postgres.

The rate that turns jobs into seconds is measured by the workers themselves: each
heartbeat reports the jobs a process computed and its seconds in the model, so the rate
is one worker's speed while busy, not diluted by idle time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from infq.metrics import Families
from infq.ops.policy import PolicyParams, work_seconds

log = logging.getLogger("infq.ops")

STAGES = ("ready", "handed_out", "held", "computing")

_STAGES_SQL = text(
    """
    SELECT model,
           count(*) FILTER (WHERE status = 'queued' AND lease_expires_at IS NULL) AS ready,
           count(*) FILTER (WHERE status = 'queued' AND lease_expires_at IS NOT NULL
                              AND lease_owner IS NULL) AS handed_out,
           count(*) FILTER (WHERE status = 'queued' AND lease_owner IS NOT NULL) AS held,
           count(*) FILTER (WHERE status = 'running') AS computing
      FROM jobs
     WHERE status IN ('queued', 'running') AND coalesced_into IS NULL
     GROUP BY model
    """
)

_WORKERS_SQL = text(
    """
    SELECT model, count(*) AS processes, sum(jobs_done) AS jobs_done, sum(busy_s) AS busy_s
      FROM (SELECT DISTINCT process_id, split_part(m, '@', 1) AS model, jobs_done, busy_s
              FROM worker_processes, unnest(models) AS m  -- lanes: model@revision
             WHERE heartbeat_at > now() - make_interval(secs => :stale)) AS p
     GROUP BY model
    """
)


@dataclass(frozen=True)
class Stages:
    """One model's jobs by stage."""

    ready: int = 0
    handed_out: int = 0
    held: int = 0
    computing: int = 0

    @property
    def total(self) -> int:
        """Jobs of the model not yet final, in Postgres."""
        return self.ready + self.handed_out + self.held + self.computing


@dataclass(frozen=True)
class WorkRemaining:
    """A snapshot of the work not yet done."""

    kafka_lag: int | None  # None: Kafka was not asked (or did not answer)
    models: dict[str, Stages] = field(default_factory=dict)
    # One worker's measured rate per model (jobs per second of compute).
    rates: dict[str, float] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)

    def jobs(self, models: list[str] | None = None) -> int:
        """Jobs to do for ``models`` (default: all), Kafka lag included."""
        names = self.models if models is None else models
        stages = sum(self.models[m].total for m in names if m in self.models)
        return stages + (self.kafka_lag or 0)

    def rate(self, models: list[str]) -> float | None:
        """The slowest measured rate among ``models`` (None: none measured yet)."""
        rates = [self.rates[m] for m in models if m in self.rates]
        return min(rates) if rates else None

    def seconds(self, model: str, params: PolicyParams) -> float:
        """One worker's seconds of work for ``model`` at its measured rate."""
        return work_seconds(self.jobs([model]), self.rates.get(model), params)


def measure(session: Session, *, kafka_lag: int | None, stale_after_s: float) -> WorkRemaining:
    """Read Postgres once; ``kafka_lag`` comes from a :class:`~infq.ops.lag.LagWatcher`."""
    models = {
        r.model: Stages(r.ready, r.handed_out, r.held, r.computing)
        for r in session.execute(_STAGES_SQL)
    }
    rates: dict[str, float] = {}
    workers: dict[str, int] = {}
    for r in session.execute(_WORKERS_SQL, {"stale": stale_after_s}):
        workers[r.model] = int(r.processes)
        if r.busy_s and float(r.busy_s) > 0 and r.jobs_done:
            # Total jobs over total busy seconds: one worker's rate while busy.
            rates[r.model] = float(r.jobs_done) / float(r.busy_s)
    return WorkRemaining(kafka_lag=kafka_lag, models=models, rates=rates, workers=workers)


def export(
    work: WorkRemaining, families: Families, *, params: PolicyParams, jobs_topic: str
) -> None:
    """Set ``infq_work_remaining_*`` and ``infq_kafka_lag_records`` from ``work``."""
    families.work_remaining.clear()
    families.work_remaining_seconds.clear()
    if work.kafka_lag is not None:
        families.kafka_lag.labels(topic=jobs_topic).set(work.kafka_lag)
        families.work_remaining.labels(model="", stage="kafka").set(work.kafka_lag)
    for model, stages in work.models.items():
        for stage in STAGES:
            families.work_remaining.labels(model=model, stage=stage).set(getattr(stages, stage))
    for model in {*work.models, *work.workers}:
        families.work_remaining_seconds.labels(model=model).set(work.seconds(model, params))
