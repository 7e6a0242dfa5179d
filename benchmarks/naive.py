"""What a user writes first: one Celery task per job, no batching, same model.

The task embeds one text with the same MiniLM adapter infq uses and stores the vector
with one INSERT, the way a first Celery version of this service would. The benchmark
sends one message per job and waits until every row is there.

    python -m benchmarks.naive            # the worker (settings from INFQ_* variables)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from celery import Celery
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.settings import Settings

QUEUE = "bench.naive"
TASK = "bench.naive.embed"
MODEL = "all-MiniLM-L6-v2"

_TABLE = text(
    "CREATE TABLE IF NOT EXISTS bench_naive (job_id uuid PRIMARY KEY, result jsonb, "
    "finished_at timestamptz DEFAULT clock_timestamp())"
)


def make_app(settings: Settings) -> Celery:
    """The naive app: JSON, the default prefetch, one queue."""
    app = Celery("infq-naive", broker=settings.broker, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True,
                    task_default_queue=QUEUE, broker_connection_retry_on_startup=True)  # fmt: skip
    return app


def prepare(sessions: sessionmaker[Session]) -> None:
    """The results table."""
    with sessions.begin() as session:
        session.execute(_TABLE)


def send(app: Celery, items: list[tuple[uuid.UUID, str]]) -> None:
    """One message per job."""
    with app.producer_or_acquire() as producer:
        for job_id, body in items:
            app.send_task(TASK, args=[str(job_id), body], queue=QUEUE, producer=producer)


def done(sessions: sessionmaker[Session]) -> int:
    """Rows stored so far."""
    with sessions() as session:
        return int(session.scalar(text("SELECT count(*) FROM bench_naive")) or 0)


def worker() -> None:
    """Run the naive worker: one process, one job at a time (as infq's one worker)."""
    from infq.catalogue.catalogue import Catalogue, builtin_entries
    from infq.db.session import make_engine, make_sessionmaker
    from workers.loading import load_lane

    settings = Settings()
    app = make_app(settings)
    sessions = make_sessionmaker(make_engine(settings.database, pool_size=1))
    lock = threading.Lock()
    loaded: dict[str, Any] = {}

    def model() -> Any:
        with lock:
            if "m" not in loaded:
                lane = Catalogue(builtin_entries()).lanes([MODEL])[0]
                loaded["m"] = load_lane(lane, device=settings.device)
            return loaded["m"]

    @app.task(name=TASK)  # type: ignore[untyped-decorator]
    def embed(job_id: str, body: str) -> None:
        vector = model().predict("embed", [body], {"normalize": True})[0]
        stored = orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        with sessions.begin() as session:
            session.execute(
                text("INSERT INTO bench_naive (job_id, result) VALUES (:j, CAST(:r AS jsonb)) "
                     "ON CONFLICT DO NOTHING"),
                {"j": job_id, "r": stored},
            )  # fmt: skip

    model()  # load before taking work, as infq's worker does
    app.worker_main(["worker", "--queues", QUEUE, "--pool", "solo", "--concurrency", "1",
                     "--loglevel", "WARNING", "--without-gossip", "--without-mingle"])  # fmt: skip


def wait(
    sessions: sessionmaker[Session], n: int, *, timeout_s: float, check: Callable[[], None]
) -> None:
    """Until ``n`` rows are stored (``check`` raises if the worker died)."""
    deadline = time.monotonic() + timeout_s
    while done(sessions) < n:
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"naive Celery stored {done(sessions)} of {n} in {timeout_s} s")
        time.sleep(0.2)


if __name__ == "__main__":
    worker()
