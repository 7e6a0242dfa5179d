"""``infq demo``: the whole pipeline on this machine, end to end, with a summary.

Starts (or finds) the local stack, runs a dispatcher and a worker as real processes,
submits a public-domain data set (with repeats), follows it to the end on a progress
bar and prints what happened. The stack is left running for ``infq status``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infq.batches.finalize import finalize
from infq.batches.follow import final_count, follow_batch
from infq.bus.kafka import make_publisher
from infq.db import batches as batch_rows
from infq.db.models import Job
from infq.db.session import engine_for, make_sessionmaker
from infq.demo.stats import batch_histogram, percentile
from infq.ops.autoscaler import Autoscaler, Point, changes, gpu_count
from infq.ops.lag import LagWatcher
from infq.ops.policy import PolicyParams
from infq.ops.supervisor import Supervisor, file_sink
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from producers.sdk import JobProducer, new_batch_id

DATA_FILE = Path(__file__).parent / "data" / "sentences.txt"
MODEL = "all-MiniLM-L6-v2"
REPEATS = 300
TIMEOUT_S = 600.0


def load_texts(*, repeats: int, seed: int = 7) -> list[str]:
    """Every sentence of the data set plus ``repeats`` of them again, shuffled."""
    unique = [ln.strip() for ln in DATA_FILE.read_text(encoding="utf-8").splitlines() if ln.strip()]
    rng = random.Random(seed)
    texts = unique + rng.sample(unique, k=min(repeats, len(unique)))
    rng.shuffle(texts)
    return texts


@dataclass
class Services:
    """The dispatcher, and the worker pool under the autoscaler, as the demo runs them."""

    dispatcher: subprocess.Popen[bytes]
    scaler: Autoscaler
    thread: threading.Thread
    logs_dir: Path
    log_file: IO[str]

    @classmethod
    def start(cls, settings: Settings, sessions: sessionmaker[Session]) -> Services:
        """Launch ``infq dispatcher`` and the autoscaler; logs under the stack dir."""
        logs = settings.stack_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "demo-dispatcher.log").open("ab") as log:
            dispatcher = subprocess.Popen(
                [sys.executable, "-m", "infq", "dispatcher"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        log_file = (logs / "demo-workers.log").open("a", encoding="utf-8")
        params = PolicyParams.from_settings(settings)
        if not gpu_count():
            # One device per worker: on a CPU-only host a second MiniLM worker only
            # shares the same cores (measured: 63 jobs/s with two, over 100 with one).
            params = replace(params, max_workers=1, min_workers=min(params.min_workers, 1))
        scaler = Autoscaler(settings, sessions, Supervisor(file_sink(log_file)), models=[MODEL],
                            lag=LagWatcher(settings).start(), params=params)  # fmt: skip
        thread = threading.Thread(target=scaler.run, name="infq-autoscaler", daemon=True)
        thread.start()
        return cls(dispatcher, scaler, thread, logs, log_file)

    def check(self) -> None:
        """Fail loudly if the dispatcher died."""
        if self.dispatcher.poll() is not None:
            log = f"{self.logs_dir}/demo-dispatcher.log"
            raise RuntimeError(
                f"the dispatcher exited with {self.dispatcher.returncode}; see {log}"
            )

    def stop(self) -> None:
        """Drain the workers (each finishes its batch first), then stop the dispatcher."""
        self.scaler.stop()
        self.thread.join(timeout=self.scaler.settings.worker_grace_s + 10)
        if self.dispatcher.poll() is None:
            self.dispatcher.send_signal(signal.SIGTERM)
            try:
                self.dispatcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.dispatcher.kill()
        for p in changes(self.scaler.timeline):
            self.log_file.write(f"autoscale  | t={p.t_s:.1f}s work_jobs={p.work_jobs} "
                                f"rate={p.rate_jobs_per_s} desired={p.desired} "
                                f"actual={p.actual} ({p.reason})\n")  # fmt: skip
        self.log_file.close()


def run_demo(settings: Settings, console: Console) -> None:
    """The demo proper, against the stack ``settings`` points at."""
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    services = Services.start(settings, sessions)
    columns = (
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # A tenant of its own per run: the (tenant-scoped) cache starts cold every time.
    tenant = f"demo-{uuid.uuid4().hex[:8]}"
    texts = load_texts(repeats=REPEATS)
    batch_id, again_id = new_batch_id(), new_batch_id() + "-again"
    again = texts[:REPEATS]
    # The main run is a sealed batch, so it ends with its output file like any batch.
    with sessions.begin() as session:
        batch_rows.create(session, tenant=tenant, batch_id=batch_id, total_jobs=len(texts),
                          webhook_url=None, model=MODEL)  # fmt: skip
    output_uri = None
    try:
        with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
            # Warm-up: one job through the whole path, so model loading and the
            # consumer-group join are not counted in the measured run.
            warm = new_batch_id() + "-warmup"
            producer.submit(model=MODEL, text="Warming up.", batch_id=warm, cache=False)
            with console.status("starting the dispatcher and a worker (loading the model)…"):
                while final_count(sessions, warm) < 1:
                    services.check()
                    time.sleep(0.2)
            with Progress(*columns, console=console) as bar:
                sending = bar.add_task("submitting", total=len(texts))
                computing = bar.add_task("computing", total=len(texts))
                started = time.monotonic()
                producer.submit_many(
                    texts,
                    model=MODEL,
                    batch_id=batch_id,
                    tenant=tenant,
                    first_index=0,
                    on_sent=lambda n: bar.advance(sending, n),
                )
                follow_batch(
                    sessions, batch_id, total=len(texts), bar=bar, task=computing,
                    timeout_s=TIMEOUT_S, check=services.check,
                )  # fmt: skip
                wall_s = time.monotonic() - started
                # The same sentences again: now answered from precomputed results.
                hits = bar.add_task("cache hits", total=len(again))
                hits_started = time.monotonic()
                producer.submit_many(again, model=MODEL, batch_id=again_id, tenant=tenant)
                follow_batch(
                    sessions, again_id, total=len(again), bar=bar, task=hits,
                    timeout_s=TIMEOUT_S, check=services.check, poll_s=0.05,
                )  # fmt: skip
                hits_wall_s = time.monotonic() - hits_started
        # The notifier finishes batches in production (`infq up`); the demo runs none,
        # so it finishes its own: the output and error files, in input order.
        with console.status("writing the batch's output file…"):
            output_uri = finish_demo_batch(settings, sessions, (tenant, batch_id))
    finally:
        services.stop()
    with sessions() as session:
        rows = list(session.scalars(select(Job).where(Job.batch_id == batch_id)))
        hit_rows = list(session.scalars(select(Job).where(Job.batch_id == again_id)))
    engine.dispose()
    _summary(
        console,
        settings,
        Run(rows=rows, batch_id=batch_id, wall_s=wall_s, tenant=tenant, output_uri=output_uri),
        Run(rows=hit_rows, batch_id=again_id, wall_s=hits_wall_s),
        services.scaler.timeline,
        max_workers=services.scaler.params.max_workers,
    )


@dataclass(frozen=True)
class Run:
    """One measured submission: its rows and wall time."""

    rows: list[Job]
    batch_id: str
    wall_s: float
    tenant: str = ""
    output_uri: str | None = None  # the batch's output file, once finished

    def latencies_s(self) -> list[float]:
        """Kafka timestamp → final, per job."""
        return [
            (r.finished_at - r.submitted_at).total_seconds()
            for r in self.rows
            if isinstance(r.finished_at, datetime) and isinstance(r.submitted_at, datetime)
        ]

    def latency_text(self) -> str:
        """p50 / p95 latency."""
        lat = self.latencies_s()
        return f"{percentile(lat, 50):.3f} s / {percentile(lat, 95):.3f} s"


def scaling_text(timeline: list[Point], *, max_workers: int) -> str:
    """The pool's changes: ``t=0.0 s 0 → t=0.5 s 1 → …`` (workers alive)."""
    changes: list[str] = []
    last = None
    for p in timeline:
        if p.actual != last:
            changes.append(f"{p.t_s:.0f} s: {p.actual}")
            last = p.actual
    peak = max((p.actual for p in timeline), default=0)
    shown = " → ".join(changes[:8]) + (" → …" if len(changes) > 8 else "")
    return f"peak {peak} of max {max_workers}; workers alive at {shown}"


def finish_demo_batch(
    settings: Settings, sessions: sessionmaker[Session], key: tuple[str, str]
) -> str | None:
    """Finish the demo's batch as the notifier would; returns its output file's uri."""
    from infq.bus.celery import create_app

    publisher = make_publisher(settings)
    try:
        announcer = Announcer(settings=settings, sessions=sessions, publisher=publisher,
                              celery=create_app(settings))  # fmt: skip
        finalize(key, sessions=sessions, store=S3ResultStore.from_settings(settings),
                 announcer=announcer)  # fmt: skip
    finally:
        publisher.close()
    with sessions() as session:
        batch = batch_rows.get(session, key)
    return batch.output_uri if batch is not None else None


def _summary(
    console: Console,
    settings: Settings,
    main: Run,
    hits: Run,
    timeline: list[Point],
    *,
    max_workers: int,
) -> None:
    rows = main.rows
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    computed = [r for r in rows if r.started_at is not None]
    coalesced = sum(1 for r in rows if r.coalesced_into is not None)
    histogram = batch_histogram([r.batch_size for r in computed if r.batch_size])
    answered = sum(1 for r in hits.rows if r.cache_hit)
    table = Table(title=f"infq demo — batch {main.batch_id}", show_header=False)
    distinct = len({r.input["text"] for r in rows if r.input})
    table.add_row("jobs", f"{len(rows)} ({len(rows) - distinct} repeated inputs)")
    table.add_row("by status", ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    table.add_row(
        "computed", f"{len(computed)} jobs; {coalesced} identical jobs in flight shared a result"
    )
    table.add_row("wall time", f"{main.wall_s:.1f} s (submit → last job final)")
    table.add_row("throughput", f"{len(rows) / main.wall_s:.0f} jobs/s")
    table.add_row(
        "workers (autoscaled)",
        scaling_text(timeline, max_workers=max_workers),
    )
    table.add_row("model batches", ", ".join(f"{n} x {size}" for size, n in histogram.items()))
    table.add_row("latency p50 / p95", f"{main.latency_text()} (Kafka timestamp → result written)")
    table.add_row(
        "cache hits",
        f"{answered} of {len(hits.rows)} resubmitted jobs, "
        f"{len(hits.rows) / hits.wall_s:.0f} jobs/s, latency p50 / p95 {hits.latency_text()}",
    )
    sample = next((r for r in rows if r.result_uri), None)
    table.add_row("results", f"Postgres table jobs (batch_id='{main.batch_id}')")
    if main.output_uri:
        table.add_row("output file", f"{main.output_uri} (JSONL, input order)")
        table.add_row(
            "download", f"infq batches results {main.batch_id} --tenant {main.tenant} -o out.jsonl"
        )
    if sample is not None:
        table.add_row(
            "payloads", f"s3://{settings.s3_bucket}/results/ (one JSONL object per batch)"
        )
        table.add_row("look at one", f"infq status {sample.job_id}")
    console.print(table)
    console.print(
        f"Stack left running (logs in {settings.stack_dir / 'logs'}); "
        "stop it with `infq stack down`."
    )
