"""Dead letters read back: what the dispatcher refused, by code, and sent again.

A record the dispatcher refused goes to the DLQ topic with its reason and its original
bytes (:mod:`infq.dispatch.dead_letters`). Most refusals are final and already have a
job row saying so (``rejected`` with the reason); re-sending them changes nothing, since
the job id is the idempotency key. The ones worth sending again are those that never
became a row because the database refused them (``database_refused``: a constraint
since fixed, a column since added): :func:`replay` re-sends the original bytes to the
topic they came from, with the job id as key, and skips letters whose job has a row.

:func:`select` and :func:`summary` are pure; :func:`read` and :func:`replay` are the
Kafka and Postgres adapters.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.bus.kafka import Message, Publisher, read_until
from infq.settings import Settings
from schemas.events import DeadLetter

REPLAY_CHUNK = 1000


@dataclass(frozen=True)
class Letter:
    """One dead letter, with the record it carries."""

    offset: int
    letter: DeadLetter

    @property
    def value(self) -> bytes:
        """The refused record's original bytes."""
        if self.letter.raw is not None:
            return self.letter.raw.encode()
        return base64.b64decode(self.letter.raw_base64 or "")

    def message(self) -> Message:
        """The record as it is sent again: to its topic, keyed by its job id."""
        key = str(self.letter.job_id).encode() if self.letter.job_id else None
        return Message(self.letter.source.topic, key, self.value)


@dataclass(frozen=True)
class Filter:
    """Which letters a command takes (empty codes: every code)."""

    codes: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def __call__(self, letter: Letter) -> bool:
        at = letter.letter.rejected_at
        return (
            (not self.codes or letter.letter.error.code in self.codes)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )


def select(letters: Iterable[Letter], keep: Filter) -> list[Letter]:
    """The letters ``keep`` takes, in topic order."""
    return [letter for letter in letters if keep(letter)]


def summary(letters: Sequence[Letter]) -> list[tuple[str, int, datetime, datetime]]:
    """(code, letters, first, last) per code, the most frequent first."""
    counts = Counter(letter.letter.error.code for letter in letters)
    out = []
    for code, n in counts.most_common():
        times = [x.letter.rejected_at for x in letters if x.letter.error.code == code]
        out.append((code, n, min(times), max(times)))
    return out


def read(settings: Settings) -> Iterator[Letter]:
    """Every letter on the DLQ topic written before now (one that is not a dead letter,
    written there by something else, is passed over)."""
    now_ms = int(time.time() * 1000)
    for record in read_until(settings, settings.dlq_topic, before_ms=now_ms):
        try:
            yield Letter(record.offset, DeadLetter.model_validate(orjson.loads(record.value)))
        except (orjson.JSONDecodeError, ValidationError):
            continue


@dataclass
class Replayed:
    """What a replay sent, and what it skipped because the job already has a row."""

    sent: int = 0
    has_row: int = 0


def replay(
    letters: Sequence[Letter],
    *,
    publisher: Publisher,
    sessions: sessionmaker[Session],
    dry_run: bool = False,
) -> Replayed:
    """Send ``letters``' records again, but those whose job has a row (it is accounted
    for already: sending it again would be a no-op); every send confirmed by the broker."""
    out = Replayed()
    for start in range(0, len(letters), REPLAY_CHUNK):
        chunk = letters[start : start + REPLAY_CHUNK]
        rowed = _with_rows(sessions, [x.letter.job_id for x in chunk if x.letter.job_id])
        due = [x for x in chunk if x.letter.job_id not in rowed]
        out.has_row += len(chunk) - len(due)
        if not dry_run and due:
            publisher.send_or_raise([x.message() for x in due])
        out.sent += len(due)
    return out


def _with_rows(sessions: sessionmaker[Session], ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    with sessions() as session:
        found = session.execute(text("SELECT job_id FROM jobs WHERE job_id = ANY(:ids)"),
                                {"ids": ids})  # fmt: skip
        return {r[0] for r in found}
