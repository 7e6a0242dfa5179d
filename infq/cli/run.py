"""Long-running processes: ``init``, ``dispatcher``, ``scheduler``, ``worker``, ``notifier``,
``api``, ``flower``."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from celery import Celery
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.celery import create_app, model_queue
from infq.bus.kafka import make_consumer, make_publisher
from infq.catalogue.catalogue import batch_sizes, for_settings
from infq.db.session import engine_for, make_sessionmaker
from infq.dispatch.dispatcher import Dispatcher
from infq.dispatch.scheduler import Scheduler
from infq.logs import configure
from infq.ops.bootstrap import initialise
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings

log = logging.getLogger("infq.worker")

console = Console()


def init() -> None:
    """Migrate Postgres to head, create the Kafka topics and the S3 bucket (idempotent)."""
    settings = Settings()
    configure(settings.log_level)
    report = initialise(settings)
    created = ", ".join(report.topics_created) or "none (all existed)"
    console.print(f"database migrated; topics created: {created}; bucket: {report.bucket}")


def _scheduler(settings: Settings, sessions: sessionmaker[Session], celery: Celery) -> Scheduler:
    announcer = Announcer(
        settings=settings, sessions=sessions, publisher=make_publisher(settings), celery=celery
    )
    return Scheduler(
        settings=settings,
        sessions=sessions,
        celery=celery,
        announcer=announcer,
        store=S3ResultStore.from_settings(settings),
        batch_sizes=batch_sizes(for_settings(settings)),
    )


def _serve_metrics(
    settings: Settings, sessions: sessionmaker[Session], *, what: str, report_work: bool
) -> None:
    """``/metrics`` on INFQ_METRICS_PORT; a scheduler also exports the work remaining."""
    from infq import metrics
    from infq.ops.reporter import WorkReporter

    if metrics.serve(settings.metrics_port, what=what) and report_work:
        WorkReporter(settings, sessions).start()


def _stop_on_signals(*stoppers: Callable[[], None]) -> None:
    def _stop(*_: Any) -> None:
        for stop in stoppers:
            stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def dispatcher() -> None:
    """Consume infq.jobs and record jobs in Postgres; runs the scheduler too (until SIGTERM)."""
    settings = Settings()
    configure(settings.log_level)
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    celery = create_app(settings)
    consumer = make_consumer(
        settings,
        topics=[settings.jobs_topic, settings.batches_topic],
        group_id=settings.consumer_group,
    )
    publisher = make_publisher(settings)
    scheduler = _scheduler(settings, sessions, celery) if settings.scheduler_in_dispatcher else None
    loop = Dispatcher(
        settings=settings,
        catalogue=for_settings(settings),
        sessions=sessions,
        celery=celery,
        consumer=consumer,
        publisher=publisher,
        on_recorded=scheduler.wake if scheduler else lambda: None,
    )
    thread = None
    if scheduler is not None:
        thread = threading.Thread(target=scheduler.run, name="infq-scheduler", daemon=True)
        thread.start()
    _serve_metrics(settings, sessions, what="dispatcher", report_work=scheduler is not None)
    _stop_on_signals(loop.stop, *([scheduler.stop] if scheduler else []))
    try:
        loop.run()
    finally:
        if scheduler is not None and thread is not None:
            scheduler.stop()
            thread.join(timeout=10)
        consumer.close(autocommit=False)
        publisher.close()
        engine.dispose()


def scheduler() -> None:
    """Run only the scheduler: hand out work within windows, expire leases, sweep the outbox."""
    settings = Settings()
    configure(settings.log_level)
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    loop = _scheduler(settings, sessions, create_app(settings))
    _serve_metrics(settings, sessions, what="scheduler", report_work=True)
    _stop_on_signals(loop.stop)
    try:
        loop.run()
    finally:
        loop.announcer.publisher.close()
        engine.dispose()


def worker(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model to serve, all its revisions, or one as MODEL@REVISION (repeatable).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Worker processes (default INFQ_WORKER_CONCURRENCY).")
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork or solo.")] = "prefork",
) -> None:
    """Run a micro-batching Celery worker for the given models (default: all)."""
    # Before torch loads: OpenMP threads that spin between operations fight the
    # worker's own stage threads and the services on the same cores, and a preempted
    # spinner stalls every operation at its barrier. With sleeping threads, two paired
    # 15 s runs at 50 jobs/s on 2 cores had p99 1-3 s instead of 6-7 s, at the same
    # burst rate.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from workers.tasks import register

    settings = Settings()
    configure(settings.log_level)
    catalogue = for_settings(settings)
    names = [lane.name for lane in catalogue.lanes(model)]
    app = create_app(settings, models=names)
    # Loading torch and a model can take longer than Celery's 4 s default.
    app.conf.worker_proc_alive_timeout = 300
    nodename = f"infq-{os.getpid()}@{socket.gethostname()}"
    register(app, settings, catalogue=catalogue, lanes=names, hostname=nodename)
    queues = ",".join(model_queue(n) for n in names)
    processes = concurrency or settings.worker_concurrency
    if processes > 1 and _uses_cuda(settings.device):
        # One model copy per GPU: more processes on one device only split its memory
        # and interleave their kernels. Scale out with one worker per GPU instead
        # (CUDA_VISIBLE_DEVICES; the autoscaler's GPU slots do this).
        log.warning("device is CUDA: running 1 worker process, not %d", processes)
        processes = 1
    argv = ["worker", "--queues", queues, "--pool", pool,
            "--concurrency", str(processes),
            "--hostname", nodename, "--loglevel", settings.log_level,
            "--task-events", "--without-gossip", "--without-mingle"]  # fmt: skip
    app.worker_main(argv)


def _uses_cuda(device: str) -> bool:
    """Whether the worker's models will sit on a GPU (``auto`` with one present)."""
    if device == "cpu":
        return False
    import torch  # only here: this command loads torch in its processes anyway

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def notifier(
    concurrency: Annotated[
        int | None, typer.Option(help="Threads (default INFQ_WEBHOOK_CONCURRENCY).")
    ] = None,
) -> None:
    """Run the notifier: signed webhook deliveries and batch output files."""
    from infq.bus.celery import CONTROL_QUEUE, WEBHOOK_QUEUE
    from workers.control import register_control

    settings = Settings()
    configure(settings.log_level)
    app = create_app(settings)
    register_control(app, settings)
    from infq import metrics

    # Threads pool: the deliveries run in this process, which serves their metrics.
    metrics.serve(settings.metrics_port, what="notifier")
    argv = ["worker", "--queues", f"{WEBHOOK_QUEUE},{CONTROL_QUEUE}", "--pool", "threads",
            "--concurrency", str(concurrency or settings.webhook_concurrency),
            "--hostname", f"infq-notifier-{os.getpid()}@%h", "--loglevel", settings.log_level,
            "--task-events", "--without-gossip", "--without-mingle"]  # fmt: skip
    app.worker_main(argv)


def api() -> None:
    """Run the REST API (OpenAPI at /docs) on INFQ_API_HOST:INFQ_API_PORT."""
    import uvicorn

    from infq import metrics
    from infq.api.app import create_api

    settings = Settings()
    configure(settings.log_level)
    # Metrics on their own port: the API's port is public, metric labels name tenants.
    metrics.serve(settings.metrics_port, what="api")
    uvicorn.run(
        create_api(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
    )


def flower(
    port: Annotated[
        int | None, typer.Option(help="Port of the dashboard (default INFQ_FLOWER_PORT).")
    ] = None,
    address: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
) -> None:
    """Run the Flower dashboard (workers, infq.batch tasks, queues) with basic auth."""
    from infq.ops.flower import credentials

    settings = Settings()
    configure(settings.log_level)
    app = create_app(settings, models=[lane.name for lane in for_settings(settings).lanes()])
    user, password = credentials(settings)
    app.start(
        [
            "flower",
            f"--port={port or settings.flower_port}",
            f"--address={address}",
            f"--basic-auth={user}:{password}",
        ]
    )
