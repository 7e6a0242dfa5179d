"""What an operator sees, on the real stack: the Kafka lag from the fetch high watermark
(right on Tansu, whose ListOffsets is short after batched produces), flushes as
``infq.batch`` tasks in Flower's HTTP API (behind basic auth), the Prometheus families
on the dispatcher's and the worker's ``/metrics``, and the ``infq status`` overview."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.ops.lag import LagProbe
from infq.settings import Settings
from infq.stack.processes import free_port
from producers.sdk import JobProducer
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    isolated_env,
    send_raw,
    settings_for,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-flower"


def job(text: str, **params: object) -> bytes:
    return orjson.dumps({"model": "echo", "input": {"text": text}, "params": params})


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` of one process as {(sample name, labels): value}."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def total(values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and want <= ls)


def test_lag_flower_metrics_and_status(stack_env: dict[str, str], settings: Settings) -> None:
    ports = {"dispatcher": free_port(), "worker": free_port(), "flower": free_port()}
    env = isolated_env(stack_env, settings, name="obs", extra={
        "INFQ_FLOWER_PASSWORD": PASSWORD, "INFQ_FLOWER_PORT": str(ports["flower"]),
        "INFQ_MAX_BATCH_SIZE": "16",
    })  # fmt: skip
    own = settings_for(env)

    # Given 10 single sends and then one batch of 10 on the jobs topic, not yet consumed
    producer = KafkaProducer(bootstrap_servers=own.kafka, acks="all", linger_ms=200)
    for n in range(10):
        producer.send(own.jobs_topic, value=job(f"single {n} {uuid.uuid4().hex}"), partition=0)
        producer.flush()
    for n in range(10):
        producer.send(own.jobs_topic, value=job(f"batched {n} {uuid.uuid4().hex}"), partition=0)
    producer.flush()
    producer.close()
    # Then the lag counts all 20 (Tansu's ListOffsets would say 11)
    probe = LagProbe(own)
    try:
        assert probe.lag(own.jobs_topic) == 20
    finally:
        probe.close()

    flower = InfqProcess(["flower", "--port", str(ports["flower"])], env=env,
                         log_path=LOG_DIR / "obs-flower.log")  # fmt: skip
    started: list[InfqProcess] = [flower]
    engine = make_engine(own.database)
    sessions: sessionmaker[Session] = make_sessionmaker(engine)
    base = f"http://127.0.0.1:{ports['flower']}"
    auth = ("infq", PASSWORD)
    try:
        wait_for(_answers(f"{base}/api/tasks", auth), timeout_s=60, what="Flower to start")
        # Flower refuses a request without the password
        assert httpx.get(f"{base}/api/tasks", timeout=5).status_code == 401
        started.append(InfqProcess(["dispatcher"], env={
            **env, "INFQ_METRICS_PORT": str(ports["dispatcher"])},
            log_path=LOG_DIR / "obs-dispatcher.log"))  # fmt: skip
        started.append(InfqProcess(["worker", "--model", "echo"], env={
            **env, "INFQ_METRICS_PORT": str(ports["worker"])},
            log_path=LOG_DIR / "obs-worker.log"))  # fmt: skip

        # When 200 jobs run, then 5 that fail, and one record is not JSON
        with JobProducer(own.kafka, topic=own.jobs_topic) as jobs:
            ok = jobs.submit_many([f"obs {n} {uuid.uuid4().hex}" for n in range(200)],
                                  model="echo", cache=False)  # fmt: skip
            wait_final(sessions, ok, timeout_s=120)
            bad = jobs.submit_many([f"fail {n} {uuid.uuid4().hex}" for n in range(5)],
                                   model="echo", params={"fail": True}, cache=False)  # fmt: skip
            wait_final(sessions, bad, timeout_s=60)
        send_raw(own, own.jobs_topic, [b"{not json"])

        # Then Flower lists the flushes as infq.batch tasks with their job counts
        def tasks() -> dict[str, dict[str, object]]:
            r = httpx.get(f"{base}/api/tasks", params={"taskname": "infq.batch"}, auth=auth,
                          timeout=10)  # fmt: skip
            r.raise_for_status()
            found: dict[str, dict[str, object]] = r.json()
            return found

        def counted() -> bool:
            done = [t for t in tasks().values() if t["state"] == "SUCCESS"]
            return sum(_jobs(t) for t in done) >= 220

        wait_for(counted, timeout_s=30, what="Flower to count the flushes", poll_s=0.5)
        listed = list(tasks().values())
        succeeded = [t for t in listed if t["state"] == "SUCCESS"]
        failed = [t for t in listed if t["state"] == "FAILURE"]
        assert all("'echo'" in str(t["args"]) for t in listed)
        assert all(t["worker"] and t["runtime"] is not None for t in succeeded)
        assert sum(_jobs(t) for t in failed) == 5, failed
        assert "echo_fail" in str(failed[0]["exception"])

        # And the worker's /metrics has the inference families
        worker = samples(ports["worker"])
        assert total(worker, "infq_batch_size_jobs_count", model="echo") == len(succeeded) + len(
            failed
        )
        assert total(worker, "infq_batch_size_jobs_sum", model="echo") == 225
        for name in ("infq_batch_tokens_count", "infq_inference_seconds_count",
                     "infq_queue_wait_seconds_count", "infq_end_to_end_seconds_count"):  # fmt: skip
            assert total(worker, name, model="echo") > 0, name
        assert total(worker, "infq_jobs_total", status="succeeded", model="echo") == 220
        assert total(worker, "infq_jobs_total", status="failed", model="echo") == 5

        # And the dispatcher's: jobs received, the dead letter, work remaining, lag
        def dispatcher_reports() -> bool:
            d = samples(ports["dispatcher"])
            return (
                total(d, "infq_dlq_records_total", code="invalid_json") == 1
                and any(n == "infq_work_remaining_jobs" for n, _ in d)
                and total(d, "infq_kafka_lag_records") == 0
            )

        wait_for(dispatcher_reports, timeout_s=30, what="the dispatcher's metrics", poll_s=0.5)
        d = samples(ports["dispatcher"])
        assert total(d, "infq_jobs_total", status="received", model="echo") == 225
        assert total(d, "infq_work_remaining_jobs", model="echo") == 0

        # And `infq status` shows the system healthy, the live worker and the failures
        out = subprocess.run([sys.executable, "-m", "infq", "status", "--json"],
                             env={**env, "PATH": ""}, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        health = json.loads(out.stdout)
        assert out.returncode == 0, out.stdout + out.stderr
        assert health["healthy"] is True
        assert [w["live"] for w in health["workers"]] == [True]
        assert health["throughput_jobs_per_s"]["echo"] > 0
        assert {f["error_code"] for f in health["recent_failures"]} == {"echo_fail"}
    finally:
        for p in reversed(started):
            p.stop()
        engine.dispose()


def _jobs(task: dict[str, object]) -> int:
    found = re.search(r"'jobs': (\d+)", str(task["kwargs"]))
    return int(found.group(1)) if found else 0


def _answers(url: str, auth: tuple[str, str]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, auth=auth, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check
