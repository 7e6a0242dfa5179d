"""The chaos suite: each scenario injects one fault into a running infq and counts what it
cost. Target in every row: 0 lost, 0 stuck, 0 computed twice, 0 duplicate events, 0
orphaned objects, and recovery within one lease + 10 s.

Every scenario runs in a :class:`~tests.chaos.world.World` of its own on the chaos
stack; the rows are printed as a table at the end of the run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from typing import Any

import psutil
import pytest
from sqlalchemy import text

from infq.bus.kafka import ensure_topics
from infq.errors import PublishFailed
from infq.settings import Settings
from infq.stack.supervisor import Stack
from producers.sdk import JobProducer
from tests.chaos.conftest import LOG_DIR, STACK_DIR
from tests.chaos.proxy import TcpProxy
from tests.chaos.world import RECOVERY_BUDGET_S, Row, World
from tests.integration.harness import InfqProcess, Receiver, wait_for

pytestmark = pytest.mark.chaos

ECHO = ("worker", "--model", "echo")


def make_world(
    worlds: list[World], env: dict[str, str], base: Settings, name: str, **extra: str
) -> World:
    world = World(env, base, name=name, log_dir=LOG_DIR, extra=extra)
    worlds.append(world)
    return world


def under_load(
    world: World, *, workers: int = 1, jobs: int, delay_ms: int, env: dict[str, str] | None = None
) -> list[uuid.UUID]:
    """Start a dispatcher and ``workers`` echo workers, submit ``jobs`` and return once
    200 succeeded: the fault then hits a system in full flow."""
    world.start("dispatcher", env=env)
    for n in range(workers):
        world.start(*ECHO, tag=f"w{n}", env=env)
    world.wait_registered(workers)
    ids = world.submit(jobs, delay_ms=delay_ms)
    world.wait_until(ids, status="succeeded", at_least=200, timeout_s=90)
    return ids


def assert_clean(row: Row, *, all_succeeded: bool = True, duplicates_allowed: int = 0) -> None:
    """The targets of every row."""
    assert row.lost == 0, row
    assert row.stuck == 0, row
    assert row.computed_twice == 0, row
    assert row.duplicate_events <= duplicates_allowed, row
    assert row.missing_events == 0, row
    assert row.orphaned_objects == 0, row
    if all_succeeded:
        assert row.final == {"succeeded": row.submitted}, row


def after_a_kill(
    world: World,
    scenario: str,
    ids: list[uuid.UUID],
    stranded: list[uuid.UUID],
    rows: list[Row],
) -> None:
    """Wait for the dead process's jobs and then all, record the row, and check the
    targets: the stranded jobs ran again within one lease + 10 s."""
    recover_s = world.wait_final(stranded, timeout_s=120)
    world.wait_final(ids, timeout_s=120)
    row = world.measure(scenario, ids, recover_s=recover_s)
    row.notes = f"{len(stranded)} jobs held by the dead process"
    rows.append(row)
    assert stranded, "the kill hit no job: the scenario proved nothing"
    # Events are at least once (docs/guarantees.md): a worker killed between
    # the broker's ack of a flush's events and the commit of their notified_at has them
    # announced again by the outbox. The pipelined worker announces one flush while the
    # next computes, so a kill "mid-batch" can land in that window: at most one flush's
    # events come twice (consumers dedupe on job_id). Missing events stay at 0.
    assert_clean(row, duplicates_allowed=world.settings.max_batch_size)
    assert recover_s <= RECOVERY_BUDGET_S, row


def process_ids(world: World, pids: set[int]) -> list[str]:
    """Worker process rows registered by any of ``pids``."""
    with world.sessions() as session:
        rows = session.execute(
            text("SELECT process_id FROM worker_processes WHERE pid = ANY(:p)"), {"p": list(pids)}
        )
        return [r[0] for r in rows]


def held_by(world: World, owners: list[str]) -> list[uuid.UUID]:
    """Open jobs whose lease one of ``owners`` holds."""
    with world.sessions() as session:
        rows = session.execute(
            text(
                "SELECT job_id FROM jobs WHERE lease_owner = ANY(:o) "
                "AND status IN ('queued', 'running')"
            ),
            {"o": owners},
        )
        return [r[0] for r in rows]


def family(proc: InfqProcess) -> set[int]:
    """A process and its children (a worker's pool)."""
    main = psutil.Process(proc.pid)
    return {main.pid, *(c.pid for c in main.children(recursive=True))}


def service_pid(stack: Stack, name: str) -> int:
    state = next(s for s in stack.status() if s.name == name)
    assert state.pid is not None
    return state.pid


def test_worker_sigkill_mid_batch(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    world = make_world(world_factory, chaos_env, chaos_base, "worker_kill")
    ids = under_load(world, jobs=1200, delay_ms=150)
    first = world.procs[-1]

    # When the whole worker (parent and pool) dies mid-batch
    owners = process_ids(world, family(first))
    world.wait_mid_batch()
    first.crash()
    stranded = held_by(world, owners)
    world.start(*ECHO, tag="b")

    # Then its jobs run again within a lease, and nothing is lost or done twice
    after_a_kill(world, "worker SIGKILL mid-batch", ids, stranded, record_row)


def test_pool_child_sigkill(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    world = make_world(world_factory, chaos_env, chaos_base, "child_kill")
    ids = under_load(world, jobs=1200, delay_ms=150)
    worker = world.procs[-1]

    # When only the pool child computing the batch is killed (Celery starts a new one)
    children = {c.pid for c in psutil.Process(worker.pid).children()}
    owners = process_ids(world, children)
    world.wait_mid_batch()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    stranded = held_by(world, owners)

    after_a_kill(world, "pool child SIGKILL", ids, stranded, record_row)


def test_worker_sigterm_returns_its_jobs_at_once(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    world = make_world(world_factory, chaos_env, chaos_base, "worker_term")
    ids = under_load(world, workers=2, jobs=1500, delay_ms=100)
    leaving = world.procs[-1]

    # When one worker is asked to stop while it holds jobs
    held: list[uuid.UUID] = []

    def holding() -> bool:
        held[:] = held_by(world, process_ids(world, family(leaving)))
        return bool(held)

    wait_for(holding, timeout_s=30, what="the leaving worker to hold jobs", poll_s=0.01)
    stopped_at = time.monotonic()
    leaving.stop()
    exited_s = time.monotonic() - stopped_at

    # Then it finishes its batch, hands back its queue, and the other finishes the rest
    recover_s = world.wait_final(held, timeout_s=60) + exited_s
    world.wait_final(ids, timeout_s=120)
    row = world.measure("worker SIGTERM", ids, recover_s=recover_s)
    row.notes = f"{len(held)} jobs held at SIGTERM; exited in {exited_s:.1f} s"
    record_row.append(row)
    assert held
    assert_clean(row)
    # Released at once, not after a lease expiry
    assert recover_s < 6.0, row


def test_dispatcher_sigkill(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    # A dead consumer's partitions move on after one Kafka session timeout: 3 s here
    # (6 s is the local default, 45 s Kafka's).
    fast_failover = {"INFQ_POLL_MAX_RECORDS": "50", "INFQ_KAFKA_SESSION_TIMEOUT_MS": "3000"}
    world = make_world(world_factory, chaos_env, chaos_base, "dispatcher_kill", **fast_failover)
    world.start(*ECHO)
    first = world.start("dispatcher", tag="a")
    world.wait_registered(1)
    ids = world.submit(2000)
    world.wait_until(ids, status="succeeded", at_least=300, timeout_s=90)

    first.crash()
    world.start("dispatcher", tag="b")
    recover_s = world.wait_final(ids, timeout_s=120)
    row = world.measure("dispatcher SIGKILL", ids, recover_s=recover_s)
    record_row.append(row)
    assert_clean(row)
    assert recover_s <= RECOVERY_BUDGET_S


def kill_redis(stack: Stack, proxy: TcpProxy) -> None:
    """Redis dies with the handed-out window in it and comes back empty."""
    os.kill(service_pid(stack, "redis"), signal.SIGKILL)
    time.sleep(1.0)
    stack.up()


def restart_postgres(stack: Stack, proxy: TcpProxy) -> None:
    """A clean Postgres restart, down for 2 s."""
    postgres = next(s for s in stack.services if s.name == "postgres")
    postgres.stop(pid=service_pid(stack, "postgres"), stack_dir=STACK_DIR)
    time.sleep(2.0)
    stack.up()


def s3_down(stack: Stack, proxy: TcpProxy) -> None:
    """S3 unreachable for 10 s (its data kept)."""
    proxy.down()
    time.sleep(10.0)
    proxy.up()


OUTAGES = {
    "Redis killed, restarted empty": kill_redis,
    "Postgres restarted": restart_postgres,
    "S3 down 10 s": s3_down,
}


@pytest.mark.parametrize("scenario", list(OUTAGES))
def test_a_service_going_away_and_coming_back(
    scenario: str, chaos_env: dict[str, str], chaos_base: Settings, chaos_stack: Stack,
    world_factory: list[World], record_row: list[Row],
) -> None:  # fmt: skip
    proxy = TcpProxy(next(s for s in chaos_stack.status() if s.name == "s3").port)
    name = scenario.split()[0].lower() + "_outage"
    world = make_world(world_factory, chaos_env, chaos_base, name,
                       INFQ_S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")  # fmt: skip
    ids = under_load(world, jobs=1500, delay_ms=100)

    # When the service goes away while jobs flow, and comes back
    ports = {s.name: s.port for s in chaos_stack.status()}
    OUTAGES[scenario](chaos_stack, proxy)
    assert {s.name: s.port for s in chaos_stack.status()} == ports  # where clients look

    # Then every process carries on without a restart, and nothing is lost or doubled
    recover_s = world.wait_final(ids, timeout_s=120)
    row = world.measure(scenario, ids, recover_s=recover_s)
    record_row.append(row)
    assert_clean(row)
    assert recover_s <= RECOVERY_BUDGET_S + 10  # + draining what waited meanwhile


def test_kafka_broker_restarted(
    chaos_env: dict[str, str], chaos_base: Settings, chaos_stack: Stack,
    world_factory: list[World], record_row: list[Row],
) -> None:  # fmt: skip
    world = make_world(world_factory, chaos_env, chaos_base, "kafka_restart")
    world.start("dispatcher")
    world.start(*ECHO)
    world.wait_registered(1)
    before = world.submit(300)
    world.wait_final(before, timeout_s=90)

    # When the broker dies (Tansu keeps topics in memory: they die with it)
    ports = {s.name: s.port for s in chaos_stack.status()}
    os.kill(service_pid(chaos_stack, "kafka"), signal.SIGKILL)
    fast: dict[str, Any] = {
        "max_block_ms": 3000, "request_timeout_ms": 3000, "delivery_timeout_ms": 6000
    }  # fmt: skip
    # Then a job produced while it is down raises in the SDK instead of vanishing
    with pytest.raises(PublishFailed), JobProducer(world.settings.kafka, **fast) as producer:
        producer.submit(model="echo", text="while the broker is down")
    chaos_stack.up()
    assert {s.name: s.port for s in chaos_stack.status()} == ports  # back where it was
    ensure_topics(world.settings)
    back_at = time.monotonic()

    # And once it is back, every process carries on without a restart
    after = world.submit(600)
    world.wait_final(after, timeout_s=120)
    recover_s = time.monotonic() - back_at
    row = world.measure("Kafka broker restarted", after, recover_s=recover_s)
    row.notes = "events of jobs before the restart died with the in-memory broker"
    record_row.append(row)
    assert_clean(row)
    assert recover_s <= RECOVERY_BUDGET_S + 20  # + the consumer group re-forming


def deliveries_by_status(world: World) -> dict[str, int]:
    with world.sessions() as session:
        rows = session.execute(text("SELECT status, count(*) FROM webhook_deliveries GROUP BY 1"))
        return {r[0]: int(r[1]) for r in rows}


def test_notifier_killed_mid_delivery(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    receiver = Receiver("unused", delay_s=0.5)
    world = make_world(world_factory, chaos_env, chaos_base, "notifier_kill")
    world.start("dispatcher")
    world.start(*ECHO)
    notifier = world.start("notifier", "--concurrency", "4", tag="a")
    world.wait_registered(1)
    try:
        ids = world.submit(40, webhook_url=receiver.url)
        wait_for(lambda: len(receiver.received) >= 5, timeout_s=60, what="first deliveries")
        notifier.crash()
        killed_at = time.monotonic()
        world.start("notifier", "--concurrency", "4", tag="b")
        wait_for(lambda: deliveries_by_status(world).get("delivered", 0) >= len(ids), timeout_s=90,
                 what="every delivery")  # fmt: skip
        recover_s = time.monotonic() - killed_at
        world.wait_final(ids, timeout_s=30)
        row = world.measure("notifier killed mid-delivery", ids, recover_s=recover_s)
        distinct = {r["headers"].get("X-Infq-Delivery") for r in receiver.received}
        row.notes = (
            f"{len(distinct)} distinct deliveries in {len(receiver.received)} requests "
            f"(at least once; receivers dedupe on X-Infq-Delivery); {deliveries_by_status(world)}"
        )
        record_row.append(row)
        assert_clean(row)
        assert len(distinct) == len(ids)
        assert deliveries_by_status(world) == {"delivered": len(ids)}
        assert recover_s <= RECOVERY_BUDGET_S + 10
    finally:
        receiver.close()


def test_webhook_receiver_down_past_several_retries(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    from infq.stack.processes import free_port

    port = free_port()  # nothing listens yet: connections are refused
    world = make_world(world_factory, chaos_env, chaos_base, "hook_down",
                       INFQ_WEBHOOK_MAX_ATTEMPTS="30", INFQ_WEBHOOK_BASE_DELAY_S="0.3",
                       INFQ_WEBHOOK_MAX_DELAY_S="1")  # fmt: skip
    world.start("dispatcher")
    world.start(*ECHO)
    world.start("notifier")
    world.wait_registered(1)
    ids = world.submit(20, webhook_url=f"http://127.0.0.1:{port}/hook")
    world.wait_final(ids, timeout_s=60)

    def attempts() -> int:
        with world.sessions() as session:
            return int(session.scalar(text("SELECT min(attempts) FROM webhook_deliveries")) or 0)

    # When every delivery has failed more often than Celery's default retry limit (3)
    wait_for(lambda: attempts() >= 6, timeout_s=90, what="6 failed attempts per delivery")
    receiver = Receiver("unused", port=port)
    up_at = time.monotonic()
    try:
        wait_for(lambda: deliveries_by_status(world).get("delivered", 0) >= len(ids), timeout_s=60,
                 what="every delivery")  # fmt: skip
        recover_s = time.monotonic() - up_at
        row = world.measure("webhook receiver down past retries", ids, recover_s=recover_s)
        row.notes = f"deliveries {deliveries_by_status(world)} after >= 6 failed attempts each"
        record_row.append(row)
        assert_clean(row)
        assert deliveries_by_status(world) == {"delivered": len(ids)}
        assert recover_s <= RECOVERY_BUDGET_S
    finally:
        receiver.close()


def test_two_workers_on_a_burst_larger_than_their_window(
    chaos_env: dict[str, str], chaos_base: Settings, world_factory: list[World],
    record_row: list[Row],
) -> None:  # fmt: skip
    world = make_world(world_factory, chaos_env, chaos_base, "burst")
    world.start("dispatcher")
    world.start(*ECHO, tag="a")
    world.start(*ECHO, tag="b")
    world.wait_registered(2)
    window = int(world.settings.window_batches * 2 * world.settings.max_batch_size)  # 2 slots
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with world.sessions() as session:
                n = session.scalar(
                    text(
                        "SELECT count(*) FROM jobs WHERE status = 'queued' "
                        "AND lease_expires_at IS NOT NULL"
                    )
                )
            peak = max(peak, int(n or 0))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    ids = world.submit(4000, delay_ms=20)
    world.wait_final(ids, timeout_s=180)
    done.set()
    sampler.join()
    row = world.measure("two workers, burst > window", ids, recover_s=time.monotonic() - started)
    row.notes = f"peak handed out {peak} (window {window}); recover_s = whole burst"
    record_row.append(row)
    assert_clean(row)
    assert 0 < peak <= window + world.settings.dispatch_chunk_size
