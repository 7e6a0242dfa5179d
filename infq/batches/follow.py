"""Following a batch until every job is final, on a progress bar the caller owns (the
demo, `infq precompute`, `infq submit --wait`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.progress import Progress, TaskID
from sqlalchemy.orm import Session, sessionmaker

from infq.db import jobs as job_rows
from schemas.status import FINAL_STATUSES


def final_count(sessions: sessionmaker[Session], batch_id: str) -> int:
    """Jobs of ``batch_id`` that are final."""
    with sessions() as session:
        counts = job_rows.count_by_status(session, batch_id=batch_id)
    return sum(n for s, n in counts.items() if s in FINAL_STATUSES)


def follow_batch(
    sessions: sessionmaker[Session],
    batch_id: str,
    *,
    total: int,
    bar: Progress,
    task: TaskID,
    timeout_s: float,
    check: Callable[[], None] = lambda: None,
    poll_s: float = 0.25,
) -> None:
    """Advance ``bar`` until ``total`` jobs of the batch are final; ``check`` may raise."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = final_count(sessions, batch_id)
        bar.update(task, completed=done)
        if done >= total:
            return
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{total - done} jobs still open after {timeout_s:.0f} s")
        time.sleep(poll_s)
