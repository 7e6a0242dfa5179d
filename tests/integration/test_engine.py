"""The worker engine's pipeline on the real stack: stages on their own threads, the
next forward pass overlapping the previous batch's finish."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from infq.bus.celery import create_app
from infq.bus.messages import WorkItem
from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.db.jobs import insert_new
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for, wait_for
from workers.context import WorkerContext
from workers.engine import Engine

MODEL, REVISION = "echo", "echo-1"
LANE = f"{MODEL}@{REVISION}"


class Probe:
    """A staged model that records which thread ran each stage, and whose first
    ``finish`` waits until a second ``forward`` has started: only a pipelined engine
    gets past it (a sequential one would wait out the timeout and fall back)."""

    def __init__(self) -> None:
        self.threads: dict[str, set[str]] = {"prepare": set(), "forward": set(), "finish": set()}
        self.forwards = 0
        self.second_forward = threading.Event()
        self.overlapped: bool | None = None

    def _saw(self, stage: str) -> None:
        self.threads[stage].add(threading.current_thread().name)

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> list[str]:
        self._saw("prepare")
        return list(texts)

    def forward(self, prepared: list[str]) -> list[str]:
        self._saw("forward")
        self.forwards += 1
        if self.forwards == 2:
            self.second_forward.set()
        return [t.upper() for t in prepared]

    def finish(self, prepared: list[str], output: list[str]) -> list[Any]:
        self._saw("finish")
        if self.overlapped is None:
            self.overlapped = self.second_forward.wait(timeout=20)
        return [{"text": t} for t in output]

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        raise AssertionError("the staged path must not fall back to predict here")


def test_the_next_forward_pass_runs_while_the_previous_batch_finishes(
    stack_env: dict[str, str], settings: Settings
) -> None:
    # Given an engine with batches of 4 and a probe model, in an infq of its own
    env = isolated_env(stack_env, settings, name="engine", extra={"INFQ_MAX_BATCH_SIZE": "4"})
    own = settings_for(env)
    ctx = WorkerContext.build(
        own, catalogue=Catalogue(builtin_entries()), lanes=[MODEL], celery=create_app(own)
    )
    probe = Probe()
    ctx.models[LANE] = probe
    ids = [uuid.uuid4() for _ in range(8)]
    with ctx.sessions.begin() as session:
        insert_new(session, [
            {"job_id": i, "tenant_id": "t", "status": "queued", "model": MODEL,
             "model_revision": REVISION, "task": "echo", "priority": 0,
             "input": {"text": f"job {n}"}, "created_at": datetime.now(UTC)}
            for n, i in enumerate(ids)
        ])  # fmt: skip
    engine = Engine(ctx)
    engine.start()
    try:
        # When two full batches arrive
        engine.submit([
            WorkItem(job_id=str(i), model=MODEL, revision=REVISION, task="echo",
                     text=f"job {n}", params={})
            for n, i in enumerate(ids)
        ])  # fmt: skip

        def all_succeeded() -> bool:
            with ctx.sessions() as session:
                n = session.scalar(
                    text("SELECT count(*) FROM jobs WHERE job_id = ANY(:ids) "
                         "AND status = 'succeeded'"),
                    {"ids": ids},
                )  # fmt: skip
            return int(n or 0) == len(ids)

        wait_for(all_succeeded, timeout_s=60, what="both batches to finish")
    finally:
        engine.stop()
        ctx.close()

    # Then the second forward pass ran while the first batch was being finished,
    # each stage on a thread of its own, and every job has its result
    assert probe.overlapped is True
    assert probe.threads == {
        "prepare": {"infq-prepare"},
        "forward": {"infq-forward"},
        "finish": {"infq-finish"},
    }
    with ctx.sessions() as session:
        results = session.execute(
            text("SELECT result_inline FROM jobs WHERE job_id = ANY(:ids)"), {"ids": ids}
        ).scalars()
        assert sorted(str(r) for r in results) == sorted(
            str({"text": f"JOB {n}"}) for n in range(8)
        )
    assert engine.jobs_done == 8
    assert engine.busy_s > 0
