"""Step 3 of a dispatch round: every refused record to the dead-letter topic, with its
reason and its original bytes, confirmed by the broker before the round commits."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from infq.bus.kafka import Message, Publisher
from infq.dispatch.metering import count_dead_letters
from infq.dispatch.triage import Rejection
from schemas.events import DeadLetter, JobError, RecordSource

log = logging.getLogger("infq.dispatcher")


def dead_letter(publisher: Publisher, *, topic: str, rejected: Sequence[Rejection]) -> None:
    """Send every refused record to the DLQ with its reason and original bytes.

    Raises unless the broker confirmed every letter: the round is then retried, so a
    refused record is never committed past without its dead letter.
    """
    now = datetime.now(UTC)
    letters = []
    for r in rejected:
        log.warning(
            "rejected record topic=%s partition=%d offset=%d code=%s job_id=%s",
            r.record.topic,
            r.record.partition,
            r.record.offset,
            r.code,
            r.job_id,
        )
        letter = DeadLetter(
            error=JobError(code=r.code, message=r.message),
            job_id=r.job_id,
            source=RecordSource(
                topic=r.record.topic,
                partition=r.record.partition,
                offset=r.record.offset,
                timestamp_ms=r.record.timestamp_ms,
            ),
            rejected_at=now,
            **r.raw_fields(),
        )
        key = str(r.job_id).encode() if r.job_id else None
        letters.append(Message(topic, key, _dump(letter)))
    publisher.send_or_raise(letters)
    count_dead_letters(rejected)


def _dump(model: Any) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))
