"""Deep health checks: one cheap, real request to each service, with short timeouts.

``infq status`` only knocks on each port; a load balancer asking the REST API's
``/healthz`` needs to know the API can do its work, so each probe makes a real round
trip: ``SELECT 1`` on Postgres, a Kafka metadata request for the jobs topic (to the
broker, not the producer's cached metadata, which outlives the broker), a Redis PING
and an S3 HEAD of the bucket. Probes run in parallel under one deadline, so a
service that hangs costs the caller ``timeout_s``, not a client library's retries.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all

from kafka import KafkaAdminClient
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, text

from infq.results.store import S3ResultStore
from infq.settings import Settings

OK = "ok"
# Kafka's UNKNOWN_TOPIC_OR_PARTITION: the broker answers, but infq was never initialised.
_UNKNOWN_TOPIC = 3


class ServiceProbes:
    """The four probes and the clients they keep between calls (created lazily)."""

    def __init__(self, settings: Settings, *, engine: Engine, timeout_s: float = 2.0) -> None:
        self._settings = settings
        self._engine = engine
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        # Held while a Kafka client bootstraps (up to timeout_s): not the same lock.
        self._admin_lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._redis = Redis.from_url(
            settings.broker,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._store = S3ResultStore.from_settings(settings, attempts=1, timeout_s=timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="infq-probe")
        # A probe still running from an earlier call is waited on, not started again, so
        # a hanging service never piles up threads.
        self._running: dict[str, Future[None]] = {}

    def postgres(self) -> None:
        """``SELECT 1`` through the API's own pool (pre-ping reconnects a restarted server)."""
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def kafka(self) -> None:
        """A metadata request for the jobs topic; the client is rebuilt after any failure."""
        with self._admin_lock:
            if self._admin is None:
                timeout_ms = int(self.timeout_s * 1000)
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self._settings.kafka,
                    request_timeout_ms=timeout_ms,
                    bootstrap_timeout_ms=timeout_ms,
                )
            admin = self._admin
        try:
            (topic,) = admin.describe_topics([self._settings.jobs_topic])
        except Exception:
            self._drop_admin(admin)
            raise
        if topic["error_code"] == _UNKNOWN_TOPIC:
            raise LookupError(f"no topic {self._settings.jobs_topic} (run `infq init`)")
        if topic["error_code"]:
            raise LookupError(f"metadata error {topic['error_code']}")

    def _drop_admin(self, admin: KafkaAdminClient) -> None:
        with self._admin_lock:
            if self._admin is admin:
                self._admin = None
        with contextlib.suppress(Exception):  # a client that failed may fail to close too
            admin.close()

    def redis(self) -> None:
        """PING the Celery broker."""
        self._redis.ping()

    def s3(self) -> None:
        """HEAD the result bucket."""
        self._store.ping()

    def check_all(self) -> dict[str, str]:
        """Service → ``"ok"`` or what went wrong, within about ``timeout_s`` in all."""
        probes: dict[str, Callable[[], None]] = {
            "postgres": self.postgres,
            "kafka": self.kafka,
            "redis": self.redis,
            "s3": self.s3,
        }
        with self._lock:
            futures = {}
            for name, probe in probes.items():
                running = self._running.get(name)
                if running is None or running.done():
                    running = self._running[name] = self._pool.submit(probe)
                futures[name] = running
        wait_all(futures.values(), timeout=self.timeout_s + 0.5)
        return {name: _outcome(f, self.timeout_s) for name, f in futures.items()}

    def close(self) -> None:
        """Release the clients (the API's lifespan ends)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._admin_lock:
            admin, self._admin = self._admin, None
        if admin is not None:
            self._drop_admin(admin)
        self._redis.close()


def _outcome(future: Future[None], timeout_s: float) -> str:
    if not future.done():
        return f"error: no answer within {timeout_s:g} s"
    error = future.exception()
    if error is None:
        return OK
    first = str(error).strip().splitlines()
    return f"error: {type(error).__name__}" + (f": {first[0][:200]}" if first else "")
