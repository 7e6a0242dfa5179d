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
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infq.db import jobs as job_rows
from infq.db.models import Job
from infq.db.session import make_engine, make_sessionmaker
from infq.demo.stats import batch_histogram, percentile
from infq.settings import Settings
from producers.sdk import JobProducer, new_batch_id
from schemas.status import FINAL_STATUSES

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
    """The dispatcher and worker processes the demo runs."""

    processes: list[subprocess.Popen[bytes]]
    logs_dir: Path

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Launch ``infq dispatcher`` and ``infq worker``, logging under the stack dir."""
        logs = settings.stack_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        processes = []
        for name in ("dispatcher", "worker"):
            with (logs / f"demo-{name}.log").open("ab") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "infq", name],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        return cls(processes, logs)

    def check(self) -> None:
        """Fail loudly if a process died."""
        for p in self.processes:
            if p.poll() is not None:
                log = f"{self.logs_dir}/demo-*.log"
                raise RuntimeError(f"a demo process exited with {p.returncode}; see {log}")

    def stop(self) -> None:
        """SIGTERM and wait (a worker finishes its current batch first)."""
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


def _final_count(sessions: sessionmaker[Session], batch_id: str) -> tuple[int, dict[str, int]]:
    with sessions() as session:
        counts = job_rows.count_by_status(session, batch_id=batch_id)
    return sum(n for s, n in counts.items() if s in FINAL_STATUSES), counts


def _wait(
    sessions: sessionmaker[Session], services: Services, batch_id: str, total: int, bar: Progress
) -> None:
    task = bar.add_task("computing", total=total)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        done, _ = _final_count(sessions, batch_id)
        bar.update(task, completed=done)
        if done >= total:
            return
        services.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{total - done} jobs still open after {TIMEOUT_S:.0f} s")
        time.sleep(0.25)


def run_demo(settings: Settings, console: Console) -> None:
    """The demo proper, against the stack ``settings`` points at."""
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    services = Services.start(settings)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
            # Warm-up: one job through the whole path, so model loading and the
            # consumer-group join are not counted in the measured run.
            warm = new_batch_id() + "-warmup"
            producer.submit(model=MODEL, text="Warming up.", batch_id=warm)
            with console.status("starting dispatcher and worker (loading the model)…"):
                while _final_count(sessions, warm)[0] < 1:
                    services.check()
                    time.sleep(0.2)
            texts = load_texts(repeats=REPEATS)
            batch_id = new_batch_id()
            with Progress(*columns, console=console) as bar:
                sending = bar.add_task("submitting", total=len(texts))
                started = time.monotonic()
                producer.submit_many(
                    texts,
                    model=MODEL,
                    batch_id=batch_id,
                    on_sent=lambda n: bar.advance(sending, n),
                )
                _wait(sessions, services, batch_id, len(texts), bar)
                wall_s = time.monotonic() - started
    finally:
        services.stop()
    with sessions() as session:
        rows = list(session.scalars(select(Job).where(Job.batch_id == batch_id)))
    engine.dispose()
    _summary(console, settings, rows, batch_id, wall_s, repeats=len(texts) - len(set(texts)))


def _summary(
    console: Console,
    settings: Settings,
    rows: list[Job],
    batch_id: str,
    wall_s: float,
    *,
    repeats: int,
) -> None:
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    latencies_s = [
        (r.finished_at - r.submitted_at).total_seconds()
        for r in rows
        if isinstance(r.finished_at, datetime) and isinstance(r.submitted_at, datetime)
    ]
    histogram = batch_histogram([r.batch_size for r in rows if r.batch_size])
    table = Table(title=f"infq demo — batch {batch_id}", show_header=False)
    table.add_row("jobs", f"{len(rows)} ({repeats} repeated inputs)")
    table.add_row("by status", ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    table.add_row("wall time", f"{wall_s:.1f} s (submit → last job final)")
    table.add_row("throughput", f"{len(rows) / wall_s:.0f} jobs/s")
    table.add_row("model batches", ", ".join(f"{n} x {size}" for size, n in histogram.items()))
    table.add_row("cache hits", "0 (result cache not built yet)")
    table.add_row(
        "latency p50 / p95",
        f"{percentile(latencies_s, 50):.2f} s / {percentile(latencies_s, 95):.2f} s "
        "(Kafka timestamp → result written)",
    )
    sample = next((r for r in rows if r.result_uri), None)
    table.add_row("results", f"Postgres table jobs (batch_id='{batch_id}')")
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
