"""Long-running processes: ``init``, ``dispatcher``, ``worker``, ``flower``."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

import typer
from rich.console import Console

from infq.bootstrap import initialise
from infq.bus import make_consumer, make_producer
from infq.db.session import make_engine, make_sessionmaker
from infq.dispatch.dispatcher import Dispatcher
from infq.logs import configure
from infq.settings import Settings
from workers.app import create_app
from workers.registry import default_registry

console = Console()


def init() -> None:
    """Migrate Postgres to head, create the Kafka topics and the S3 bucket (idempotent)."""
    settings = Settings()
    configure(settings.log_level)
    report = initialise(settings)
    created = ", ".join(report.topics_created) or "none (all existed)"
    console.print(f"database migrated; topics created: {created}; bucket: {report.bucket}")


def dispatcher() -> None:
    """Consume infq.jobs, record jobs in Postgres, enqueue them per model (until SIGTERM)."""
    settings = Settings()
    configure(settings.log_level)
    engine = make_engine(settings.database)
    consumer = make_consumer(
        settings,
        topics=[settings.jobs_topic, settings.batches_topic],
        group_id=settings.consumer_group,
    )
    producer = make_producer(settings)
    loop = Dispatcher(
        settings=settings,
        registry=default_registry(settings.model_revisions),
        sessions=make_sessionmaker(engine),
        celery=create_app(settings),
        consumer=consumer,
        producer=producer,
    )

    def _stop(*_: Any) -> None:
        loop.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        loop.run()
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=10)
        engine.dispose()


def worker(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model to serve (repeatable).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Worker processes (default INFQ_WORKER_CONCURRENCY).")
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork or solo.")] = "prefork",
) -> None:
    """Run a micro-batching Celery worker for the given models (default: all)."""
    from workers.tasks import register

    settings = Settings()
    configure(settings.log_level)
    registry = default_registry(settings.model_revisions)
    names = [registry.get(m).name for m in model] if model else registry.names
    app = create_app(settings, models=names)
    # Loading torch and a model can take longer than Celery's 4 s default.
    app.conf.worker_proc_alive_timeout = 300
    register(app, settings, registry=registry, model_names=names)
    queues = ",".join(settings.model_queue(n) for n in names)
    argv = ["worker", "--queues", queues, "--pool", pool,
            "--concurrency", str(concurrency or settings.worker_concurrency),
            "--hostname", f"infq-{os.getpid()}@%h", "--loglevel", settings.log_level,
            "--task-events", "--without-gossip", "--without-mingle"]  # fmt: skip
    app.worker_main(argv)


def notifier(
    concurrency: Annotated[
        int | None, typer.Option(help="Threads (default INFQ_WEBHOOK_CONCURRENCY).")
    ] = None,
) -> None:
    """Run the notifier: signed webhook deliveries and batch output files."""
    from infq.notify import CONTROL_QUEUE, WEBHOOK_QUEUE
    from workers.control import register_control

    settings = Settings()
    configure(settings.log_level)
    app = create_app(settings)
    register_control(app, settings)
    argv = ["worker", "--queues", f"{WEBHOOK_QUEUE},{CONTROL_QUEUE}", "--pool", "threads",
            "--concurrency", str(concurrency or settings.webhook_concurrency),
            "--hostname", f"infq-notifier-{os.getpid()}@%h", "--loglevel", settings.log_level,
            "--task-events", "--without-gossip", "--without-mingle"]  # fmt: skip
    app.worker_main(argv)


def api() -> None:
    """Run the REST API (OpenAPI at /docs) on INFQ_API_HOST:INFQ_API_PORT."""
    import uvicorn

    from infq.api.app import create_api

    settings = Settings()
    configure(settings.log_level)
    uvicorn.run(
        create_api(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
    )


def flower(
    port: Annotated[int, typer.Option(help="Port of the Flower dashboard.")] = 5555,
    address: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Run the Flower dashboard on the Celery broker (workers, tasks, queues)."""
    settings = Settings()
    configure(settings.log_level)
    registry = default_registry(settings.model_revisions)
    app = create_app(settings, models=registry.names)
    app.start(["flower", f"--port={port}", f"--address={address}"])
