"""Finishing a batch: its output and error files, its completion event and its webhook.

Runs once every job of a sealed batch is final (see :class:`infq.outbox.announce.Announcer`),
one finalizer at a time (a claim on the batch row, :mod:`infq.db.batch_finish`): other
copies of the message return at once. Safe to run again after a crash: the output is
rewritten identically and only the run that marks the batch finished makes its event
(kept on the row until Kafka confirms it) and its webhook.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy.orm import Session, sessionmaker

from infq.batches.files import write_files
from infq.db import batch_finish
from infq.db import batches as batch_rows
from infq.db import webhooks as webhook_rows
from infq.db.batch_finish import Completion
from infq.db.batches import BatchKey
from infq.outbox.announce import Announcer
from infq.results.store import ResultStore
from schemas.batches import BatchCompletedEvent, RequestCounts

log = logging.getLogger("infq.batches")


def finalize(
    key: BatchKey, *, sessions: sessionmaker[Session], store: ResultStore, announcer: Announcer
) -> bool:
    """Finish one batch if it is ready and unfinished; True when this call finished it."""
    with sessions.begin() as session:
        claimed = batch_finish.claim_finalizing(session, key)
        if claimed is None:
            return False  # not ready, finished, or another finalizer holds it
        expected = claimed.total_jobs

    def renew(lease_s: float = batch_finish.FINALIZE_LEASE_S) -> None:
        with sessions.begin() as session:
            batch_finish.renew_finalizing(session, key, lease_s=lease_s)

    try:
        files = write_files(sessions, store, key, renew=renew, expected=expected)
    except Exception:
        with contextlib.suppress(Exception):
            renew(0.0)  # let the next re-drive try at once
        raise
    with sessions.begin() as session:
        done = batch_finish.mark_finished(
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
        batch_finish.keep_event(session, key, payload)
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
    # The batch row is finished first (the source of truth), with its event: one Kafka
    # does not confirm now is sent again by the outbox.
    announcer.batches_completed([Completion(key, payload)])
    announcer.send_deliveries([str(d) for d in deliveries])
    log.info("batch finished tenant=%s batch_id=%s jobs=%s", key[0], key[1], counts)
    return True
