"""Prometheus metrics: every family infq exports, defined once, and the ``/metrics`` server.

Each long-running process serves its own registry on ``INFQ_METRICS_PORT`` (0: off);
Prometheus sums the counters across processes. A Celery worker's pool process serves
on ``INFQ_METRICS_PORT + its pool index`` (the inference runs there, not in the Celery
main process). ``infq up`` gives every process its own port, listed in docs/operations.md.

Names carry their units; labels are bounded (model, tenant, status, stage, code).
Families are created when a process calls :func:`families` (never at import), and a
process that never touches one still exports it, empty, so dashboards see every name.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("infq.metrics")

# Batches of 1 to 256 jobs; tokens per batch up to a full 256 x 256 batch.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


@dataclass(frozen=True)
class Families:
    """Every metric family, in one registry."""

    registry: CollectorRegistry
    jobs: Counter
    batch_size: Histogram
    batch_tokens: Histogram
    inference_seconds: Histogram
    queue_wait_seconds: Histogram
    end_to_end_seconds: Histogram
    cache_hits: Counter
    coalesced: Counter
    kafka_lag: Gauge
    work_remaining: Gauge
    work_remaining_seconds: Gauge
    workers_desired: Gauge
    workers_actual: Gauge
    lease_expiries: Counter
    retention_deleted: Counter
    webhook_attempts: Counter
    webhook_dead: Counter
    dlq_records: Counter


def _build() -> Families:
    r = CollectorRegistry(auto_describe=True)
    return Families(
        registry=r,
        jobs=Counter(
            "infq_jobs", "Jobs reaching a status (queued, succeeded, failed, rejected, "
            "cancelled), counted by the process that moved them.",
            ["status", "model", "tenant"], registry=r,
        ),
        batch_size=Histogram(
            "infq_batch_size_jobs", "Jobs per model forward pass.",
            ["model"], buckets=BATCH_BUCKETS, registry=r,
        ),
        batch_tokens=Histogram(
            "infq_batch_tokens", "Input tokens per model forward pass (the model's tokenizer).",
            ["model"], buckets=TOKEN_BUCKETS, registry=r,
        ),
        inference_seconds=Histogram(
            "infq_inference_seconds", "Model time per forward pass.",
            ["model"], buckets=SECONDS_BUCKETS, registry=r,
        ),
        queue_wait_seconds=Histogram(
            "infq_queue_wait_seconds", "Kafka timestamp to the start of computation.",
            ["model"], buckets=SECONDS_BUCKETS, registry=r,
        ),
        end_to_end_seconds=Histogram(
            "infq_end_to_end_seconds", "Kafka timestamp to the result committed.",
            ["model"], buckets=SECONDS_BUCKETS, registry=r,
        ),
        cache_hits=Counter(
            "infq_cache_hits", "Jobs answered from precomputed results at intake.",
            ["model", "tenant"], registry=r,
        ),
        coalesced=Counter(
            "infq_coalesced_jobs", "Jobs that shared an identical job's computation in flight.",
            ["model"], registry=r,
        ),
        kafka_lag=Gauge(
            "infq_kafka_lag_records", "Records on a topic the dispatcher group has not "
            "committed (fetch high watermark minus committed offset).",
            ["topic"], registry=r,
        ),
        work_remaining=Gauge(
            "infq_work_remaining_jobs", "Jobs not yet final, by stage: kafka (not yet "
            "recorded; model unknown, label model=\"\"), ready, handed_out, held, computing.",
            ["model", "stage"], registry=r,
        ),
        work_remaining_seconds=Gauge(
            "infq_work_remaining_seconds", "Work remaining for one model, in seconds of one "
            "worker's measured compute rate.",
            ["model"], registry=r,
        ),
        workers_desired=Gauge(
            "infq_workers_desired", "Workers the autoscaling policy asks for.",
            ["pool"], registry=r,
        ),
        workers_actual=Gauge(
            "infq_workers_actual", "Worker processes alive (including draining ones).",
            ["pool"], registry=r,
        ),
        lease_expiries=Counter(
            "infq_lease_expiries", "Leases that ran out: requeued, or failed as worker_lost.",
            ["model", "outcome"], registry=r,
        ),
        retention_deleted=Counter(
            "infq_retention_deleted", "Rows and objects deleted by retention, by kind.",
            ["kind"], registry=r,
        ),
        webhook_attempts=Counter(
            "infq_webhook_attempts", "Webhook delivery attempts, by outcome.",
            ["event", "outcome"], registry=r,
        ),
        webhook_dead=Counter(
            "infq_webhook_dead_letters", "Webhook deliveries that used up their attempts.",
            ["event"], registry=r,
        ),
        dlq_records=Counter(
            "infq_dlq_records", "Records sent to infq.jobs.dlq, by error code.",
            ["code"], registry=r,
        ),
    )  # fmt: skip


_lock = threading.Lock()
_families: Families | None = None


def families() -> Families:
    """This process's metric families (built on first use)."""
    global _families
    with _lock:
        if _families is None:
            _families = _build()
        return _families


def serve(port: int, *, what: str) -> bool:
    """Serve ``/metrics`` on ``port`` (0: off). A port in use is logged, not fatal: the
    process's work matters more than its metrics."""
    if port <= 0:
        return False
    try:
        start_http_server(port, registry=families().registry)
    except OSError as e:
        log.warning("metrics for %s not served: port %d: %s", what, port, e)
        return False
    log.info("metrics for %s on :%d/metrics", what, port)
    return True
