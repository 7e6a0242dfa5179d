"""Finishing a batch: its output and error files, its completion event and its webhook.

Runs once every job of a sealed batch is final (see :class:`infq.outbox.announce.Announcer`).
Safe to run twice: the output is rewritten identically and only the first run to mark
the batch finished publishes the event and the webhook.
"""

from __future__ import annotations

import logging

import orjson
from sqlalchemy.orm import Session, sessionmaker

from infq.batches.files import write_files
from infq.bus.kafka import Message
from infq.db import batches as batch_rows
from infq.db import webhooks as webhook_rows
from infq.db.batches import BatchKey
from infq.outbox.announce import Announcer
from infq.results.store import ResultStore
from schemas.batches import BatchCompletedEvent, RequestCounts

log = logging.getLogger("infq.batches")


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
    files = write_files(sessions, store, key)
    with sessions.begin() as session:
        done = batch_rows.mark_finished(
            session, key, output_uri=files.output_uri, error_uri=files.error_uri
        )
        if done is None:
            return False
        counts = batch_rows.counts(session, key)
        event = BatchCompletedEvent(
            tenant=key[0],
            batch_id=key[1],
            total_jobs=done.total_jobs or 0,
            status=batch_rows.status_of(done),
            counts=counts,
            request_counts=RequestCounts.of(counts, total=done.total_jobs),
            output_uri=files.output_uri,
            error_uri=files.error_uri,
            metadata=done.metadata_,
            created_at=done.created_at,
            finished_at=done.finished_at or done.created_at,
        )
        payload = event.model_dump(mode="json", exclude_none=True)
        deliveries = []
        if done.webhook_url:
            # The webhook carries presigned URLs of both files (they expire; the
            # event on Kafka carries only the uris).
            expires_s = announcer.settings.result_url_expires_s
            signed = event.model_copy(
                update={
                    "output_url": store.presign(files.output_uri, expires_s=expires_s),
                    "error_url": store.presign(files.error_uri, expires_s=expires_s),
                }
            )
            deliveries = webhook_rows.ensure(
                session,
                [
                    {
                        "tenant_id": key[0],
                        "event": "batch.completed",
                        "subject_id": f"{key[0]}/{key[1]}",
                        "url": done.webhook_url,
                        "payload": signed.model_dump(mode="json", exclude_none=True),
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
