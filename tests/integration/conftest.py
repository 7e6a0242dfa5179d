"""Session fixtures: the real local stack, a dispatcher and a worker as real processes.

The stack lives in ``.infq/test-stack`` (separate from the demo's) and is stopped at
the end only if this session started it. Each session uses fresh topic names, so runs
never see each other's records.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.db.session import make_engine, make_sessionmaker
from infq.ops.bootstrap import forget_lost_payloads, initialise
from infq.settings import Settings
from infq.stack.processes import free_port
from infq.stack.supervisor import Stack
from infq.tenants.accounts import Credentials
from infq.tenants.accounts import create as create_tenant
from tests.integration.harness import InfqProcess, unique, wait_api

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = ROOT / ".infq" / "test-stack"
LOG_DIR = STACK_DIR / "logs"


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """Start (or reuse) the test stack; the env that points processes at it."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    stack = Stack(STACK_DIR)
    states = stack.up()
    env = {
        "INFQ_STACK_DIR": str(STACK_DIR),
        "INFQ_JOBS_TOPIC": unique("test.jobs"),
        "INFQ_RESULTS_TOPIC": unique("test.results"),
        "INFQ_DLQ_TOPIC": unique("test.dlq"),
        "INFQ_CONSUMER_GROUP": unique("test-dispatcher"),
        "INFQ_MAX_WAIT_MS": "100",
        "INFQ_BATCHES_TOPIC": unique("test.batches"),
        "INFQ_WEBHOOK_ALLOW": '["127.0.0.0/8"]',
        "INFQ_WEBHOOK_BASE_DELAY_S": "0.5",
        "INFQ_WEBHOOK_MAX_DELAY_S": "1.5",
        "INFQ_WEBHOOK_MAX_ATTEMPTS": "6",
        "INFQ_API_PORT": str(free_port()),
        "HF_HUB_OFFLINE": "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        initialise(Settings())
        if any(s.name == "s3" and s.started_now for s in states):
            forget_lost_payloads(Settings())
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if all(s.started_now for s in states):
            stack.down()


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    """Settings of this test session (built once, like an entry point does)."""
    return Settings()


@pytest.fixture(scope="session")
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database."""
    engine = make_engine(settings.database)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def worker(stack_env: dict[str, str]) -> Iterator[InfqProcess]:
    """One real micro-batching worker (MiniLM + echo) for the whole session."""
    proc = InfqProcess(["worker"], env=stack_env, log_path=LOG_DIR / "worker.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def dispatcher(stack_env: dict[str, str], worker: InfqProcess) -> Iterator[InfqProcess]:
    """One real dispatcher on the session's jobs topic."""
    proc = InfqProcess(["dispatcher"], env=stack_env, log_path=LOG_DIR / "dispatcher.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def notifier(stack_env: dict[str, str]) -> Iterator[InfqProcess]:
    """The webhook and batch-finalize worker."""
    proc = InfqProcess(["notifier"], env=stack_env, log_path=LOG_DIR / "notifier.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api(stack_env: dict[str, str], dispatcher: InfqProcess, notifier: InfqProcess) -> Iterator[str]:
    """The REST API as a real uvicorn process; yields its base URL."""
    proc = InfqProcess(["api"], env=stack_env, log_path=LOG_DIR / "api.log")
    base = f"http://127.0.0.1:{stack_env['INFQ_API_PORT']}"
    wait_api(base)
    yield base
    proc.stop()


@pytest.fixture(scope="session")
def tenants_made(settings: Settings, sessions: sessionmaker[Session]) -> dict[str, Credentials]:
    """Two tenants with API keys and webhook secrets."""
    made = {}
    with sessions.begin() as session:
        for name in ("alpha", "beta"):
            creds = create_tenant(session, unique(name))
            assert creds is not None
            made[name] = creds
    return made
