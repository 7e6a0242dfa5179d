"""The benchmark's measurements, each one :class:`Phase`.

(a) the raw model loop, (b) end to end burst and sustained, (c) echo end to end,
(d) naive Celery, (e) the cache-hit path, (f) latency at half of (b)'s load. End-to-end
figures are from Postgres' own timestamps: the Kafka record time of the first job to
the finish time of the last one.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import naive
from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.demo.runner import load_texts
from infq.settings import Settings
from producers.sdk import JobProducer
from workers.loading import load_lane

MODEL = "all-MiniLM-L6-v2"


@dataclass
class Phase:
    """One measured phase."""

    key: str
    name: str
    jobs: int
    wall_s: float
    inputs: str = ""
    latency_s: dict[str, float] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)
    note: str = ""
    # Latency at each percent 0..100 (end-to-end phases): the CDF.
    cdf_s: list[float] = field(default_factory=list)

    @property
    def jobs_per_s(self) -> float:
        """Throughput."""
        return self.jobs / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {**asdict(self), "jobs_per_s": round(self.jobs_per_s, 1)}


def unique_texts(n: int, tag: str) -> list[str]:
    """``n`` distinct texts of natural lengths (the demo's sentences, tagged)."""
    base = load_texts(repeats=0)
    return [f"{base[i % len(base)]} [{tag}{i}]" for i in range(n)]


def describe_lengths(lengths: list[int]) -> str:
    """``tokens min/median/p95/max``."""
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"tokens min {ordered[0]}, median {statistics.median(ordered):.0f}, "
            f"p95 {p95}, max {ordered[-1]}")  # fmt: skip


def raw_loop(texts: list[str], *, batch_size: int, device: str) -> tuple[Phase, list[int]]:
    """(a) The model alone: length-sorted batches, no services (the limit)."""
    model: Any = load_lane(Catalogue(builtin_entries()).lanes([MODEL])[0], device=device)
    lengths = model.token_lengths(texts)
    ordered = sorted(texts, key=len)
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    model.predict("embed", batches[0], {"normalize": True})  # warm up
    started = time.perf_counter()
    for batch in batches:
        model.predict("embed", batch, {"normalize": True})
    wall = time.perf_counter() - started
    phase = Phase("a", "raw model loop", len(texts), wall, describe_lengths(lengths),
                  note=f"length-sorted batches of {batch_size}, {device}, float32")  # fmt: skip
    return phase, lengths


def _final_stats(sessions: sessionmaker[Session], batch_id: str) -> dict[str, Any]:
    with sessions() as session:
        rows = session.execute(
            text(
                "SELECT status, batch_size, submitted_at, finished_at, "
                "extract(epoch FROM finished_at - submitted_at) AS latency "
                "FROM jobs WHERE batch_id = :b"
            ),
            {"b": batch_id},
        ).all()
    latencies = sorted(float(r.latency) for r in rows if r.latency is not None)
    cdf = [latencies[min(len(latencies) - 1, round(q / 100 * (len(latencies) - 1)))]
           for q in range(101)] if latencies else []  # fmt: skip
    first = min(r.submitted_at for r in rows)
    last = max(r.finished_at for r in rows)
    return {
        "n": len(rows),
        "ok": sum(r.status == "succeeded" for r in rows),
        "wall": (last - first).total_seconds(),
        "cdf": cdf,
        "sizes": dict(Counter(int(r.batch_size) for r in rows if r.batch_size)),
    }


def wait_final(sessions: sessionmaker[Session], batch_id: str, n: int, timeout_s: float) -> None:
    """Until ``n`` jobs of ``batch_id`` are final."""
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT count(*) FROM jobs WHERE batch_id = :b "
        "AND status IN ('succeeded', 'failed', 'rejected', 'cancelled')"
    )
    while True:
        with sessions() as session:
            if (session.scalar(query, {"b": batch_id}) or 0) >= n:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{batch_id}: not all {n} jobs final after {timeout_s:.0f} s")
        time.sleep(0.1)


def through_infq(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    key: str,
    name: str,
    texts: list[str],
    model: str = MODEL,
    rate_jobs_per_s: float | None = None,
    timeout_s: float = 900,
) -> Phase:
    """Submit ``texts`` through Kafka (all at once, or at a fixed rate) and measure."""
    batch_id = f"bench-{key}-{uuid.uuid4().hex[:6]}"
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        if rate_jobs_per_s is None:
            producer.submit_many(texts, model=model, batch_id=batch_id)
        else:
            started, sent = time.monotonic(), 0
            while sent < len(texts):
                due = min(len(texts), int((time.monotonic() - started) * rate_jobs_per_s) + 1)
                if due > sent:
                    producer.submit_many(texts[sent:due], model=model, batch_id=batch_id)
                    sent = due
                time.sleep(0.01)
    wait_final(sessions, batch_id, len(texts), timeout_s)
    stats = _final_stats(sessions, batch_id)
    if stats["ok"] != len(texts):
        raise RuntimeError(f"{name}: {len(texts) - stats['ok']} jobs did not succeed")
    cdf = stats["cdf"]
    return Phase(key, name, len(texts), stats["wall"],
                 latency_s={"p50": round(cdf[50], 3), "p95": round(cdf[95], 3),
                            "p99": round(cdf[99], 3)},
                 batch_sizes=dict(sorted(stats["sizes"].items())),
                 cdf_s=[round(v, 4) for v in cdf])  # fmt: skip


def naive_celery(
    settings: Settings,
    sessions: sessionmaker[Session],
    texts: list[str],
    *,
    check: Callable[[], None],
) -> Phase:
    """(d) One Celery task per job through the naive worker (already started)."""
    app = naive.make_app(settings)
    naive.prepare(sessions)
    naive.send(app, [(uuid.uuid4(), "warm up")])
    naive.wait(sessions, 1, timeout_s=300, check=check)
    started = time.perf_counter()
    naive.send(app, [(uuid.uuid4(), t) for t in texts])
    naive.wait(sessions, len(texts) + 1, timeout_s=900, check=check)
    wall = time.perf_counter() - started
    note = "one message, one forward pass and one INSERT per job; solo pool"
    return Phase("d", "naive Celery (a task per job)", len(texts), wall, note=note)


def batch_size_text(sizes: dict[int, int]) -> str:
    """``64x1920, 12x36``: batch size x jobs, the six sizes that ran most jobs."""
    ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], -kv[0]))[:6]
    return ", ".join(f"{s}x{n}" for s, n in ranked)
