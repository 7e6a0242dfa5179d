"""Helpers for integration tests: real processes, real topics, polling with deadlines."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.world import fresh_env, settings_from
from infq.db.models import Job
from infq.results.layout import parse_line
from infq.settings import Settings
from schemas.status import FINAL_STATUSES


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


class InfqProcess:
    """``python -m infq <command>`` as a real child process with its own env and log."""

    def __init__(self, command: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infq", *command],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: crash() kills all of it
            )

    @property
    def pid(self) -> int:
        """The main process id."""
        return self.proc.pid

    def kill_hard(self) -> None:
        """kill -9, as a crash would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def crash(self) -> None:
        """kill -9 of the whole process group (a worker's pool children included), as a
        machine or container dying would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.crash()

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log, for assertion messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(
    check: Callable[[], bool], *, timeout_s: float, what: str, poll_s: float = 0.2
) -> None:
    """Poll ``check`` until true; fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def submit_and_wait(
    api: str, api_key: str, jobs: list[dict[str, Any]], *, timeout_s: float = 120
) -> list[Any]:
    """Submit ``jobs`` through ``POST /v1/jobs`` and return their results, in order:
    the inline result, or the JSONL line fetched from its presigned byte range."""
    auth = {"Authorization": f"Bearer {api_key}"}
    answer = httpx.post(f"{api}/v1/jobs", json={"jobs": jobs}, headers=auth, timeout=30)
    assert answer.status_code == 202, answer.text
    results = []
    for job_id in answer.json()["job_ids"]:
        found: dict[str, Any] = {}

        def ready(job_id: str = job_id) -> bool:
            nonlocal found
            response = httpx.get(f"{api}/v1/jobs/{job_id}/result", headers=auth, timeout=30)
            found = response.json()
            return response.status_code == 200

        wait_for(ready, timeout_s=timeout_s, what=f"job {job_id}'s result")
        if found.get("url"):
            raw = httpx.get(found["url"], headers={"Range": found["range"]}, timeout=30).content
            results.append(parse_line(raw))
        else:
            results.append(found["result"])
    return results


def wait_api(
    base: str, *, timeout_s: float = 60, what: str = "the API", path: str = "/healthz"
) -> None:
    """Wait until the REST API at ``base`` answers ``path`` with 200 (``/openapi.json``
    for an API whose services are meant to be away: ``/healthz`` would say 503)."""

    def up() -> bool:
        try:
            return httpx.get(f"{base}{path}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout_s=timeout_s, what=f"{what} to answer {path}")


def jobs_by_id(sessions: sessionmaker[Session], ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """Current rows for ``ids``."""
    wanted = list(ids)
    with sessions() as session:
        rows = session.scalars(select(Job).where(Job.job_id.in_(wanted)))
        return {r.job_id: r for r in rows}


def wait_final(
    sessions: sessionmaker[Session], ids: Iterable[uuid.UUID], *, timeout_s: float = 120
) -> dict[uuid.UUID, Job]:
    """Wait until every job in ``ids`` exists and is final; returns the rows."""
    wanted = set(ids)
    rows: dict[uuid.UUID, Job] = {}

    def done() -> bool:
        nonlocal rows
        rows = jobs_by_id(sessions, wanted)
        return len(rows) == len(wanted) and all(r.status in FINAL_STATUSES for r in rows.values())

    wait_for(done, timeout_s=timeout_s, what=f"{len(wanted)} jobs to be final", poll_s=0.3)
    return rows


def send_raw(settings: Settings, topic: str, values: list[bytes | None]) -> None:
    """Produce raw record values (any bytes), as a foreign Kafka client would."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all")
    try:
        for value in values:
            producer.send(topic, value=value)
        producer.flush()
    finally:
        producer.close()


def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Read a topic from the start (no group) until ``until(messages)`` or the timeout."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        from kafka import TopicPartition

        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                messages.extend(orjson.loads(r.value) for r in batch)
            if until(messages):
                break
        return messages
    finally:
        consumer.close()


def completion_events(
    settings: Settings, ids: Iterable[uuid.UUID], *, timeout_s: float = 30
) -> dict[str, list[dict[str, Any]]]:
    """Completion events per job id for ``ids``, read until each has at least one."""
    wanted = {str(i) for i in ids}
    # The topic also carries batch.completed events (no job id): keep job events only.
    messages = read_topic(
        settings,
        settings.results_topic,
        until=lambda ms: wanted <= {m.get("job_id") for m in ms},
        timeout_s=timeout_s,
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        if m.get("event") == "job.completed" and m["job_id"] in wanted:
            found.setdefault(m["job_id"], []).append(m)
    return found


class Receiver:
    """A real HTTP webhook receiver on loopback that verifies every signature.

    ``answers`` is consumed one status code per request (then 200). Each request is
    recorded with whether its signature verified against ``secret``.
    """

    def __init__(
        self, secret: str, *, port: int = 0, answers: Iterable[int] = (), delay_s: float = 0.0
    ) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from infq.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

        self.secret = secret
        self.answers = list(answers)
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    verify(
                        receiver.secret,
                        timestamp_header=self.headers.get(TIMESTAMP_HEADER, ""),
                        signature_header=self.headers.get(SIGNATURE_HEADER, ""),
                        body=body,
                        now_s=time.time(),
                    )
                    verified = True
                except Exception:
                    verified = False
                time.sleep(delay_s)
                code = receiver.answers.pop(0) if receiver.answers else 200
                receiver.received.append(
                    {"body": orjson.loads(body), "verified": verified, "answered": code,
                     "headers": dict(self.headers)}
                )  # fmt: skip
                self.send_response(code)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


# Databases 0 and 1 belong to the session's own processes; worlds take turns on the rest
# (each flushes its database first, and a world's processes stop with its test).
_REDIS_DBS = itertools.cycle(range(2, 16))


def isolated_env(
    stack_env: dict[str, str],
    settings: Settings,
    *,
    name: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """An infq of its own on the shared stack: its own database, topics, consumer group
    and Redis database, so the session's workers and schedulers never touch its jobs.

    Postgres is the queue of record, so isolation starts there: a scheduler hands out
    every ready job of its database to every live worker of that database.
    """
    return fresh_env(settings, name=name, redis_db=next(_REDIS_DBS), env=stack_env, extra=extra)


def settings_for(env: dict[str, str]) -> Settings:
    """Settings as a process started with ``env`` would build them (from the environment)."""
    return settings_from(env)


def run_infq(
    args: list[str], env: dict[str, str], *, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``infq ARGS`` as a user runs it (``python -m infq``), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "infq", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
