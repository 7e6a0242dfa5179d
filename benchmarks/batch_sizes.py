"""Batch-size distribution at full load (a burst) and at half load (a steady stream at
half the burst's throughput), through the running system.

    infq stack up && infq init && infq dispatcher & infq worker &
    python -m benchmarks.batch_sizes --jobs 3000 --seconds 30

Prints one line of JSON per phase: throughput, the model batch sizes the worker ran
(from ``jobs.batch_size``) and latency percentiles (Kafka timestamp → finished).
Every text is unique (the demo's sentences with a run tag), so the cache never answers.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from infq.db.models import Job
from infq.db.session import make_engine, make_sessionmaker
from infq.demo.runner import load_texts
from infq.settings import Settings
from producers.sdk import JobProducer


def texts(n: int, tag: str) -> list[str]:
    """``n`` unique texts of natural lengths."""
    base = load_texts(repeats=0)
    return [f"{base[i % len(base)]} [{tag}-{i}]" for i in range(n)]


def summary(rows: list[Job], wall_s: float) -> dict[str, Any]:
    """Throughput, batch sizes and latencies of finished rows."""
    sizes = Counter(r.batch_size for r in rows if r.batch_size)
    latencies = sorted(
        (r.finished_at - r.submitted_at).total_seconds()
        for r in rows
        if r.finished_at and r.submitted_at
    )

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3)

    weighted = sum(size * n for size, n in sizes.items()) / max(1, sum(sizes.values()))
    return {
        "jobs": len(rows),
        "wall_s": round(wall_s, 2),
        "jobs_per_s": round(len(rows) / wall_s, 1),
        "mean_batch_size_per_job": round(weighted, 1),
        "batch_sizes_jobs": dict(sorted(sizes.items())),
        "latency_p50_s": pct(0.5),
        "latency_p95_s": pct(0.95),
        "latency_p99_s": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    settings = Settings()
    sessions = make_sessionmaker(make_engine(settings.database))

    def wait(batch_id: str, n: int) -> list[Job]:
        done = select(func.count()).where(Job.batch_id == batch_id, Job.finished_at.is_not(None))
        while True:
            with sessions() as session:
                if (session.scalar(done) or 0) >= n:
                    return list(session.scalars(select(Job).where(Job.batch_id == batch_id)))
            time.sleep(0.2)

    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        burst = f"bench-burst-{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        producer.submit_many(texts(args.jobs, burst), model=args.model, batch_id=burst)
        rows = wait(burst, args.jobs)
        full = summary(rows, time.monotonic() - started)
        print(json.dumps({"phase": "full load (burst)", **full}))

        rate = full["jobs_per_s"] / 2
        steady = f"bench-half-{uuid.uuid4().hex[:6]}"
        pool = texts(int(rate * args.seconds) + 1, steady)
        started = time.monotonic()
        sent = 0
        while sent < len(pool):
            due = min(len(pool), int((time.monotonic() - started) * rate) + 1)
            if due > sent:
                producer.submit_many(pool[sent:due], model=args.model, batch_id=steady)
                sent = due
            time.sleep(0.02)
        rows = wait(steady, len(pool))
        half = summary(rows, time.monotonic() - started)
        print(json.dumps({"phase": f"half load ({rate:.0f} jobs/s offered)", **half}))


if __name__ == "__main__":
    main()
