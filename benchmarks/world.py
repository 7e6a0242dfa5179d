"""A fresh infq on the running local stack for one benchmark run.

Its own database, topics, consumer group and Redis database, so nothing left in the
developer's queue (or cache) skews a figure, and the processes the benchmark starts
(``infq dispatcher``, ``infq worker``, the naive Celery worker) only see its work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.ops.bootstrap import initialise
from infq.settings import Settings

BENCH_REDIS_DB = 14


def settings_from(env: dict[str, str]) -> Settings:
    """Settings as a process started with ``env`` builds them."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def fresh_env(
    base: Settings,
    *,
    name: str,
    redis_db: int,
    env: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """An infq of its own on ``base``'s services: a new database, an emptied Redis
    database, fresh topic and group names, initialised (``infq init``). Returns the
    environment its processes run with (``env`` first, ``extra`` last)."""
    import psycopg
    import redis

    tag = uuid.uuid4().hex[:8]
    url = make_url(base.database)
    database = f"infq_{name}_{tag}".lower()
    admin = {"host": url.host, "port": url.port, "user": url.username,
             "password": url.password, "dbname": "postgres"}  # fmt: skip
    with psycopg.connect(**admin, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{database}"')
    broker = base.broker.rsplit("/", 1)[0] + f"/{redis_db}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    client.close()
    made = {
        **(env or {}),
        "INFQ_DATABASE_URL": url.set(database=database).render_as_string(hide_password=False),
        "INFQ_BROKER_URL": broker,
        "INFQ_JOBS_TOPIC": f"{name}.{tag}.jobs",
        "INFQ_RESULTS_TOPIC": f"{name}.{tag}.results",
        "INFQ_DLQ_TOPIC": f"{name}.{tag}.dlq",
        "INFQ_BATCHES_TOPIC": f"{name}.{tag}.batches",
        "INFQ_CONSUMER_GROUP": f"{name}-{tag}",
        **(extra or {}),
    }
    initialise(settings_from(made))
    return made


@dataclass
class World:
    """The run's environment, settings and child processes."""

    env: dict[str, str]
    settings: Settings
    sessions: sessionmaker[Session]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, base: Settings, *, logs: Path, extra: dict[str, str] | None = None) -> World:
        """Create the database and topics (``infq init`` on fresh names)."""
        env = fresh_env(base, name="bench", redis_db=BENCH_REDIS_DB,
                        extra={"INFQ_METRICS_PORT": "0", **(extra or {})})  # fmt: skip
        settings = settings_from(env)
        logs.mkdir(parents=True, exist_ok=True)
        return cls(env, settings, make_sessionmaker(make_engine(settings.database)), logs)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """A child process (``python -m ...``) with the run's environment."""
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", *argv],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append(proc)
        return proc

    def wait_for_workers(self, lanes: int, *, timeout_s: float = 180) -> None:
        """Until ``lanes`` worker lanes have registered (models loaded)."""
        deadline = time.monotonic() + timeout_s
        query = text("SELECT count(*) FROM worker_processes, unnest(models)")
        while time.monotonic() < deadline:
            with self.sessions() as session:
                if (session.scalar(query) or 0) >= lanes:
                    return
            self.check_alive()
            time.sleep(0.5)
        raise TimeoutError(f"workers did not register within {timeout_s:.0f} s; see {self.logs}")

    def check_alive(self) -> None:
        """Raise if a child exited (its log says why)."""
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {self.logs}")

    def stop_processes(self) -> None:
        """SIGTERM every child, then wait."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def stop(self) -> None:
        """Stop the children and close the database engine."""
        self.stop_processes()
        self.sessions.kw["bind"].dispose()
