"""Finishing a batch: its output file, its completion event and its webhook.

Runs once every job of a sealed batch is final (see :class:`infq.notify.Announcer`).
Safe to run twice: the output is rewritten identically and only the first run to mark
the batch finished publishes the event and the webhook.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infq.bus import Message
from infq.db import batches as batch_rows
from infq.db import webhooks as webhook_rows
from infq.db.batches import BatchKey
from infq.db.models import Job
from infq.notify import Announcer
from infq.results.layout import parse_line
from infq.results.store import ResultStore
from schemas.batches import BatchCompletedEvent

log = logging.getLogger("infq.batches")


def output_key(key: BatchKey) -> str:
    """Where a batch's output file goes."""
    tenant, batch_id = key
    return f"batches/{tenant}/{batch_id}/output.jsonl"


def write_output(sessions: sessionmaker[Session], store: ResultStore, key: BatchKey) -> str:
    """Stream every job of the batch into one JSONL object; returns its uri.

    Jobs are read in payload order, so each worker-batch object is fetched once and
    held alone in memory; lines are in that order, not submission order.
    """
    stmt = (
        select(Job)
        .where(Job.tenant_id == key[0], Job.batch_id == key[1])
        .order_by(Job.result_uri.nulls_first(), Job.result_offset, Job.job_id)
        .execution_options(yield_per=1000)
    )
    current_uri: str | None = None
    current: bytes = b""
    with tempfile.TemporaryFile() as out, sessions() as session:
        for job in session.scalars(stmt):
            line: dict[str, Any] = {"job_id": str(job.job_id), "status": job.status}
            if job.status == "succeeded":
                result = job.result_inline
                if job.result_uri and job.result_offset is not None and job.result_length:
                    if job.result_uri != current_uri:
                        current_uri, current = job.result_uri, store.get(job.result_uri)
                    end = job.result_offset + job.result_length
                    result = parse_line(current[job.result_offset : end])
                line["result"] = result
            else:
                line["error"] = {"code": job.error_code, "message": job.error_message}
            out.write(orjson.dumps(line))
            out.write(b"\n")
        out.seek(0)
        return store.put_file(output_key(key), out)


def finalize(
    key: BatchKey, *, sessions: sessionmaker[Session], store: ResultStore, announcer: Announcer
) -> bool:
    """Finish one batch if it is ready and unfinished; True when this call finished it."""
    with sessions() as session:
        batch = batch_rows.get(session, key)
        if batch is None or batch.finished_at is not None or batch.total_jobs is None:
            return False
        if batch.jobs_final < batch.total_jobs:
            return False
    uri = write_output(sessions, store, key)
    with sessions.begin() as session:
        done = batch_rows.mark_finished(session, key, output_uri=uri)
        if done is None:
            return False
        counts = batch_rows.counts(session, key)
        event = BatchCompletedEvent(
            tenant=key[0],
            batch_id=key[1],
            total_jobs=done.total_jobs or 0,
            counts=counts,
            output_uri=uri,
            created_at=done.created_at,
            finished_at=done.finished_at or done.created_at,
        )
        payload = event.model_dump(mode="json")
        deliveries = []
        if done.webhook_url:
            deliveries = webhook_rows.ensure(
                session,
                [
                    {
                        "tenant_id": key[0],
                        "event": "batch.completed",
                        "subject_id": f"{key[0]}/{key[1]}",
                        "url": done.webhook_url,
                        "payload": payload,
                    }
                ],
            )
    # The batch row is finished first (the source of truth); an event Kafka refuses
    # now is logged, not retried forever: the output file and webhook still happen.
    acked = announcer.publisher.send(
        [Message(announcer.settings.results_topic, key[1].encode(), orjson.dumps(payload))]
    )
    if not all(acked):
        log.warning("batch.completed event not confirmed tenant=%s batch_id=%s", *key)
    announcer.send_deliveries([str(d) for d in deliveries])
    log.info("batch finished tenant=%s batch_id=%s jobs=%s", key[0], key[1], counts)
    return True
