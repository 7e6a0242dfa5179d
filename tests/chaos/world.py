"""One chaos scenario's infq: isolated on the chaos stack, with everything it needs to
count what a fault cost (lost, stuck, computed twice, duplicate events, orphans).

Every result goes to S3 (``INFQ_INLINE_RESULT_MAX_BYTES=0``) in the world's own
bucket, so a job computed and stored twice shows up as its id on two lines of the
bucket, and an object no job points at is an orphan.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.results.store import S3ResultStore
from infq.settings import Settings
from producers.sdk import JobProducer
from schemas.status import FINAL_STATUSES
from tests.integration.harness import (
    InfqProcess,
    isolated_env,
    jobs_by_id,
    read_topic,
    settings_for,
    wait_for,
)

LEASE_S = 6.0
# What a scenario may take to recover once the fault is over: one lease plus 10 s.
RECOVERY_BUDGET_S = LEASE_S + 10.0


@dataclass
class Row:
    """One line of the chaos table."""

    scenario: str
    submitted: int
    final: dict[str, int] = field(default_factory=dict)
    stuck: int = 0
    lost: int = 0
    computed_twice: int = 0
    duplicate_events: int = 0
    missing_events: int = 0
    orphaned_objects: int = 0
    recover_s: float = 0.0
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


class World:
    """An infq of its own (database, topics, Redis db, bucket) and its processes."""

    def __init__(
        self,
        stack_env: dict[str, str],
        base: Settings,
        *,
        name: str,
        log_dir: Path,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_dir = log_dir
        bucket = f"infq-chaos-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        self.env = isolated_env(
            stack_env,
            base,
            name=name,
            extra={
                "INFQ_S3_BUCKET": bucket,
                "INFQ_INLINE_RESULT_MAX_BYTES": "0",
                "INFQ_LEASE_S": str(LEASE_S),
                "INFQ_HEARTBEAT_INTERVAL_S": "1",
                "INFQ_OUTBOX_GRACE_S": "3",
                "INFQ_MAX_WAIT_MS": "50",
                **(extra or {}),
            },
        )
        self.settings = settings_for(self.env)
        self.engine = make_engine(self.settings.database)
        self.sessions: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.procs: list[InfqProcess] = []

    def start(self, *command: str, tag: str = "", env: dict[str, str] | None = None) -> InfqProcess:
        """Start ``infq <command>`` in this world."""
        label = "-".join([self.name, command[0], *([tag] if tag else [])])
        proc = InfqProcess(
            list(command), env={**self.env, **(env or {})}, log_path=self.log_dir / f"{label}.log"
        )
        self.procs.append(proc)
        return proc

    def wait_registered(self, workers: int, *, timeout_s: float = 90) -> None:
        """Until ``workers`` worker processes heartbeat (models loaded)."""
        from sqlalchemy import func, select

        from infq.db.models import WorkerProcess

        def ready() -> bool:
            with self.sessions() as session:
                return (
                    session.scalar(select(func.count()).select_from(WorkerProcess)) or 0
                ) >= workers

        wait_for(ready, timeout_s=timeout_s, what=f"{workers} workers to register")

    def submit(self, n: int, *, delay_ms: int = 0, **fields: Any) -> list[uuid.UUID]:
        """``n`` unique echo jobs, confirmed by Kafka."""
        tag = uuid.uuid4().hex[:6]
        with JobProducer(self.settings.kafka, topic=self.settings.jobs_topic) as producer:
            return producer.submit_many(
                [f"{self.name} {tag} {i}" for i in range(n)],
                model="echo",
                params={"delay_ms": delay_ms},
                **fields,
            )

    def counts(self, ids: list[uuid.UUID]) -> Counter[str]:
        """Status counts of ``ids`` (``missing`` for ids without a row)."""
        rows = jobs_by_id(self.sessions, ids)
        found: Counter[str] = Counter(r.status for r in rows.values())
        found["missing"] = len(ids) - len(rows)
        return found

    def wait_until(
        self, ids: list[uuid.UUID], *, status: str, at_least: int, timeout_s: float
    ) -> None:
        """Until at least ``at_least`` of ``ids`` have ``status``."""
        wait_for(
            lambda: self.counts(ids)[status] >= at_least,
            timeout_s=timeout_s,
            what=f"{at_least} jobs {status}",
            poll_s=0.05,
        )

    def wait_mid_batch(self, *, computing_for_s: float = 0.03, timeout_s: float = 30) -> None:
        """Until some batch has been computing for ``computing_for_s`` (and is not about to
        finish: the scenarios' batches take 150 ms), so a kill lands mid-batch."""
        query = text(
            "SELECT count(*) FROM jobs WHERE status = 'running' "
            "AND started_at < now() - make_interval(secs => :least) "
            "AND started_at > now() - make_interval(secs => :most)"
        )

        def computing() -> bool:
            with self.sessions() as session:
                n = session.scalar(query, {"least": computing_for_s, "most": 0.1})
            return int(n or 0) > 0

        wait_for(computing, timeout_s=timeout_s, what="a batch mid-computation", poll_s=0.005)

    def wait_final(self, ids: list[uuid.UUID], *, timeout_s: float) -> float:
        """Seconds until every job of ``ids`` is final (or the timeout passes)."""
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            rows = jobs_by_id(self.sessions, ids)
            if len(rows) == len(ids) and all(r.status in FINAL_STATUSES for r in rows.values()):
                break
            time.sleep(0.2)
        return time.monotonic() - started

    def measure(self, scenario: str, ids: list[uuid.UUID], *, recover_s: float) -> Row:
        """The table row for ``ids``: read Postgres, the bucket and the results topic."""
        rows = jobs_by_id(self.sessions, ids)
        row = Row(scenario=scenario, submitted=len(ids), recover_s=round(recover_s, 1))
        row.final = dict(Counter(r.status for r in rows.values() if r.status in FINAL_STATUSES))
        row.lost = len(ids) - len(rows)
        row.stuck = sum(1 for r in rows.values() if r.status not in FINAL_STATUSES)
        # Objects a dead worker wrote but never recorded are deleted by the sweeper once
        # its lease is over: measure the bucket after that has settled.
        settled = time.monotonic() + LEASE_S + 5
        while time.monotonic() < settled and self._pending_objects():
            time.sleep(0.2)
        stored, objects = self._bucket_lines()
        with self.sessions() as session:
            # Any job of the world may point at an object, not only the measured ones.
            found = session.execute(text("SELECT DISTINCT result_uri FROM jobs"))
            referenced = {uri for (uri,) in found if uri}
        row.computed_twice = sum(1 for n in stored.values() if n > 1)
        row.orphaned_objects = len(objects - referenced)
        final_ids = {str(i) for i, r in rows.items() if r.status in FINAL_STATUSES}
        events = self._events(final_ids)
        row.duplicate_events = sum(1 for n in events.values() if n > 1)
        row.missing_events = len(final_ids - set(events))
        return row

    def _pending_objects(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(text("SELECT count(*) FROM pending_objects")) or 0)

    def _bucket_lines(self) -> tuple[Counter[str], set[str]]:
        store = S3ResultStore.from_settings(self.settings)
        lines: Counter[str] = Counter()
        objects = set(store.uris("results/"))
        for uri in objects:
            body = store.get(uri)
            lines.update(orjson.loads(line)["job_id"] for line in body.splitlines() if line)
        return lines, objects

    def _events(self, wanted: set[str]) -> Counter[str]:
        messages = read_topic(
            self.settings,
            self.settings.results_topic,
            until=lambda ms: wanted <= {m.get("job_id") for m in ms},
            timeout_s=20,
        )
        return Counter(
            m["job_id"]
            for m in messages
            if m.get("event") == "job.completed" and m["job_id"] in wanted
        )

    def close(self) -> None:
        """Stop every process this world started, and its database connections."""
        for proc in self.procs:
            proc.stop()
        self.engine.dispose()
