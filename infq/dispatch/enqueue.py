"""Publishing handed-out jobs to their model queues, a chunk of jobs per Celery message."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from celery import Celery

from infq.bus.celery import RUN_JOBS_TASK, model_queue
from infq.bus.messages import WorkItem, celery_priority, chunked
from infq.catalogue.catalogue import lane_name
from infq.db.scheduling import HandedOut
from infq.settings import Settings


def runs_alone(job: HandedOut, *, max_attempts: int) -> bool:
    """Whether a job's next attempt is its last after workers were lost on it: it then
    runs in a batch of its own. A process-killing input (a segfault, an abort in a
    native library) takes every job of its batch down each time; alone on its last
    attempt, it fails ``worker_lost`` by itself and its former neighbours, also alone,
    succeed. Jobs lost once to an ordinary crash (a node gone, an OOM kill) keep
    batching: the last attempt is the only slow one."""
    return job.attempts > 0 and job.attempts + 1 >= max_attempts


def work_item(job: HandedOut, *, max_attempts: int = 0) -> WorkItem:
    """What the worker needs of a job to compute it without reading Postgres."""
    return WorkItem(
        job_id=str(job.job_id),
        model=job.model,
        task=job.task,
        text=job.text,
        params=job.params,
        cache=job.cache,
        tenant=job.tenant,
        revision=job.revision,
        alone=runs_alone(job, max_attempts=max_attempts),
        attempts=job.attempts,
    )


def publish_jobs(celery: Celery, settings: Settings, jobs: Sequence[HandedOut]) -> int:
    """Send jobs to their lane's queue (``infq.model.<model>@<revision>``),
    ``dispatch_chunk_size`` per message; returns the number of messages. One broker
    connection for all of them."""
    groups: dict[tuple[str, int], list[HandedOut]] = defaultdict(list)
    for job in jobs:
        groups[(lane_name(job.model, job.revision), job.priority)].append(job)
    messages = 0
    with celery.producer_or_acquire() as producer:
        for (lane, priority), members in groups.items():
            for chunk in chunked(members, settings.dispatch_chunk_size):
                items = [work_item(j, max_attempts=settings.max_attempts) for j in chunk]
                celery.send_task(
                    RUN_JOBS_TASK,
                    args=[[item.to_wire() for item in items]],
                    queue=model_queue(lane),
                    priority=celery_priority(priority),
                    producer=producer,
                )
                messages += 1
    return messages
