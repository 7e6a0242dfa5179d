"""``infq status`` without a job id: one look at the whole system.

Services (each URL checked), processes (worker heartbeats and what ``infq up`` runs),
work remaining per model, workers, throughput over the last minute and recent failures.
Everything is read in a few statements; nothing here changes state.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from infq.ops.backlog import WorkRemaining, measure
from infq.outages import tcp_problem
from infq.settings import Settings
from infq.stack.processes import is_alive

UP_FILE = "up.json"

_THROUGHPUT_SQL = text(
    "SELECT model, count(*) AS n FROM jobs "
    "WHERE finished_at > now() - interval '60 seconds' GROUP BY model"
)
_FAILURES_SQL = text(
    "SELECT job_id, model, status, error_code, error_message, finished_at FROM jobs "
    "WHERE status IN ('failed', 'rejected') AND finished_at > now() - interval '1 hour' "
    "ORDER BY finished_at DESC LIMIT :n"
)
_WORKERS_SQL = text(
    "SELECT process_id, hostname, pid, models, held, draining, jobs_done, heartbeat_at, "
    "heartbeat_at > now() - make_interval(secs => :stale) AS live "
    "FROM worker_processes ORDER BY started_at"
)


@dataclass
class Health:
    """The overview ``infq status`` prints."""

    services: dict[str, str] = field(default_factory=dict)
    processes: dict[str, str] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    work: dict[str, dict[str, int]] = field(default_factory=dict)
    kafka_lag: int | None = None
    throughput_jobs_per_s: dict[str, float] = field(default_factory=dict)
    recent_failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Every service answers, and work waiting has a live worker."""
        services_ok = all(v == "ok" for v in self.services.values())
        waiting = any(sum(stages.values()) for stages in self.work.values())
        return services_ok and (not waiting or any(w["live"] for w in self.workers))

    @property
    def unreachable(self) -> dict[str, str]:
        """Service → what is wrong, for each service that did not answer."""
        return {name: state for name, state in self.services.items() if state != "ok"}

    def to_json(self) -> str:
        """For ``infq status --json``."""
        return json.dumps({**asdict(self), "healthy": self.healthy}, default=str, indent=2)


def tcp_state(url: str, *, service: str) -> str:
    """ "ok" if something accepts a connection at the URL's host and port."""
    problem = tcp_problem(url, service=service)
    return "ok" if problem is None else f"unreachable ({problem})"


def postgres_state(settings: Settings) -> str:
    """Why Postgres gave no session: its port refuses, or it refused us once connected."""
    problem = tcp_problem(settings.database, service="postgres")
    return f"unreachable ({problem})" if problem else "unreachable"


def up_processes(settings: Settings) -> dict[str, str]:
    """What ``infq up`` recorded it runs, and whether each is alive."""
    path = settings.stack_dir / UP_FILE
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {
        name: "alive" if is_alive(pid, name_hint="infq") else "gone"
        for name, pid in recorded.get("processes", {}).items()
    }


def collect(
    settings: Settings, session: Session | None, *, kafka_lag: int | None, failures: int = 5
) -> Health:
    """Check the services and, when Postgres answered (``session``), read the rest."""
    h = Health(kafka_lag=kafka_lag)
    h.services["kafka"] = tcp_state(settings.kafka, service="kafka")
    h.services["redis"] = tcp_state(settings.broker, service="redis")
    if settings.s3_endpoint_url:
        h.services["s3"] = tcp_state(settings.s3_endpoint_url, service="s3")
    h.services["postgres"] = "ok" if session is not None else postgres_state(settings)
    h.processes = up_processes(settings)
    if session is None:
        return h
    work: WorkRemaining = measure(session, kafka_lag=kafka_lag, stale_after_s=settings.lease_s)
    h.work = {m: asdict(stages) for m, stages in work.models.items()}
    for r in session.execute(_WORKERS_SQL, {"stale": settings.lease_s}).mappings():
        h.workers.append(dict(r))
    h.throughput_jobs_per_s = {
        r.model: round(r.n / 60, 2) for r in session.execute(_THROUGHPUT_SQL)
    }
    h.recent_failures = [
        dict(r) for r in session.execute(_FAILURES_SQL, {"n": failures}).mappings()
    ]
    return h
