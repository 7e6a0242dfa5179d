"""Tenants on the real stack: keys issued, rotated and revoked through ``infq tenants``
and refused by the real API within the cache bound; limits as a 429 with
``Retry-After`` on REST and as ``tenant_queue_full`` on Kafka; the queued counts.

Every test makes tenants of its own (``unique`` names): the ``default`` tenant and the
session's ``alpha``/``beta`` are only read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.db.models import Job
from infq.errors import OverLimit
from infq.settings import Settings
from infq.tenants import accounts
from infq.tenants.accounts import KEY_CACHE_TTL_S, Credentials
from infq.tenants.policy import QUEUE_FULL_RETRY_AFTER_S, TenantLimits
from infq.tenants.quotas import LIMITS_TTL_S, Quotas
from tests.integration.harness import (
    InfqProcess,
    read_topic,
    send_raw,
    unique,
    wait_final,
    wait_for,
)

pytestmark = pytest.mark.integration

# A cached key or limit is re-read after its TTL; allow for the request and poll times.
SLACK_S = 3.0


def _infq(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infq", *args],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def _field(output: str, label: str) -> str:
    found = re.search(rf"^{label}: (\S+)$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def _make(sessions: sessionmaker[Session], prefix: str, **limits: Any) -> Credentials:
    with sessions.begin() as session:
        made = accounts.create(session, unique(prefix), limits=TenantLimits(**limits))
    assert made is not None
    return made


def _bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def _job(text: str) -> dict[str, Any]:
    return {"model": "echo", "input": {"text": text}}


def _within(seconds: float, check: Callable[[], bool], what: str) -> float:
    """How long ``check`` took to hold; fails after ``seconds``."""
    start = time.monotonic()
    wait_for(check, timeout_s=seconds, what=what, poll_s=0.25)
    return time.monotonic() - start


def test_queued_jobs_are_counted_per_tenant(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:  # rolled back: no scheduler ever sees these rows
        limited, free = unique("counted"), unique("uncounted")
        accounts.create(session, limited, limits=TenantLimits(max_queued_jobs=3))
        accounts.create(session, free)
        statuses = {limited: ["queued", "queued", "running", "succeeded"], free: ["queued"] * 5}
        for tenant, states in statuses.items():
            for status in states:
                session.add(Job(job_id=uuid.uuid4(), status=status, model="echo",
                                tenant_id=tenant))  # fmt: skip
        session.flush()

        assert {t: n for t, n in accounts.queued_counts(session).items()
                if t in statuses} == {limited: 2, free: 5}  # fmt: skip
        assert accounts.queued_up_to(session, limited, cap=1) == 1
        assert accounts.queued_up_to(session, free, cap=100) == 5
        assert accounts.queue_room_by_tenant(session, {limited, free, "nobody"}) == {limited: 1}
        # What `infq submit` calls before it sends a file
        accounts.check_room(session, limited, jobs=1)
        accounts.check_room(session, free, jobs=10_000)
        accounts.check_room(session, "never-created", jobs=10_000)
        with pytest.raises(OverLimit) as refused:
            accounts.check_room(session, limited, jobs=2)
        assert refused.value.code == "queue_full"
        assert str(refused.value).startswith(f"tenant {limited!r} has 2 jobs queued and may have 3")
        session.rollback()


def test_a_resubmission_is_not_counted_against_the_limits_twice(
    sessions: sessionmaker[Session],
) -> None:
    """Measured before: the same upload sent again after a 503 (or a lost answer) was
    charged its whole size again although its jobs were queued already, so a tenant near
    its max queued jobs got a 429 for a retry that adds nothing (REST and `infq submit`)."""
    tenant, batch = unique("resent"), unique("resent-batch")
    ids = [uuid.uuid4() for _ in range(6)]
    with sessions.begin() as session:
        accounts.create(session, tenant, limits=TenantLimits(max_queued_jobs=8))
        # A model no worker serves: the jobs stay queued
        for job_id in ids:
            session.add(Job(job_id=job_id, status="queued", model="nobody-serves-this",
                            tenant_id=tenant, batch_id=batch))  # fmt: skip
    quotas = Quotas(sessions, burst_s=1.0)
    try:
        # The same six again (REST: by their job ids) are no new jobs
        quotas.admit(tenant, jobs=6, job_ids=ids)
        with sessions() as session:
            accounts.check_room(session, tenant, jobs=6, batch_id=batch)  # infq submit
        # while six others would exceed the limit of 8
        with pytest.raises(OverLimit):
            quotas.admit(tenant, jobs=6, job_ids=[uuid.uuid4() for _ in range(6)])
        with sessions() as session, pytest.raises(OverLimit):
            accounts.check_room(session, tenant, jobs=6, batch_id=unique("other"))
    finally:
        with sessions.begin() as session:
            session.query(Job).filter(Job.tenant_id == tenant).delete()


def test_tenant_commands_issue_show_and_limit(
    stack_env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    name = unique("cli")
    created = _ok(_infq(stack_env, "tenants", "create", name, "--max-queued", "5"))
    first_key, secret = _field(created, "api key"), _field(created, "webhook secret")
    assert "max queued jobs: 5; rate: unlimited" in created

    shown = orjson.loads(_ok(_infq(stack_env, "tenants", "show", name, "--json")))
    assert shown["webhook_secret"] == secret  # a receiver needs it to verify signatures
    assert (shown["api_key"], shown["max_queued_jobs"], shown["rate_per_s"], shown["queued"]) == (
        True, 5, None, 0)  # fmt: skip
    plain = _ok(_infq(stack_env, "tenants", "show", name))
    assert f"webhook secret: {secret}\n" in plain
    assert "api key: yes" in plain

    assert _ok(_infq(stack_env, "tenants", "limits", name, "--rate", "2.5")) == (
        f"{name}: max queued jobs: 5; rate: 2.5 jobs/s\n"
    )
    assert _ok(_infq(stack_env, "tenants", "limits", name, "--max-queued", "unlimited")) == (
        f"{name}: max queued jobs: unlimited; rate: 2.5 jobs/s\n"
    )
    listed = orjson.loads(_ok(_infq(stack_env, "tenants", "list", "--json")))
    mine = next(t for t in listed if t["tenant"] == name)
    assert (mine["max_queued_jobs"], mine["rate_per_s"], mine["queued"]) == (None, 2.5, 0)
    table = _ok(_infq(stack_env, "tenants", "list"))
    assert "max queued" in table

    # Revoke, then issue a key to the tenant that has none (as for `default`)
    assert "revoked" in _ok(_infq(stack_env, "tenants", "revoke-key", name))
    assert "had no API key" in _ok(_infq(stack_env, "tenants", "revoke-key", name))
    assert "api key: none (`infq tenants key" in _ok(_infq(stack_env, "tenants", "show", name))
    issued = _field(_ok(_infq(stack_env, "tenants", "key", name)), "api key")
    again = _infq(stack_env, "tenants", "key", name)
    assert again.returncode == 1
    assert again.stderr == (
        f"infq: error: tenant {name!r} already has an API key; "
        f"`infq tenants rotate-key {name}` replaces it\n"
    )
    rotated = _field(_ok(_infq(stack_env, "tenants", "rotate-key", name)), "api key")
    assert len({first_key, issued, rotated}) == 3
    with sessions() as session:
        assert [accounts.for_key(session, k) for k in (first_key, issued, rotated)] == [
            None, None, name]  # fmt: skip

    assert _infq(stack_env, "tenants", "create", name).returncode == 1
    for command in ("show", "key", "rotate-key", "revoke-key", "limits"):
        missing = _infq(stack_env, "tenants", command, "nobody.here")
        assert missing.returncode == 5, command
        assert missing.stderr == "infq: error: no tenant nobody.here\n"
    # The default tenant's webhook secret is there for its receivers
    default = _ok(_infq(stack_env, "tenants", "show", "default"))
    assert re.search(r"^webhook secret: \S{20,}$", default, re.MULTILINE)


def test_rotated_and_revoked_keys_are_refused_within_the_cache_bound(
    api: str, stack_env: dict[str, str]
) -> None:
    name = unique("keys")
    old = _field(_ok(_infq(stack_env, "tenants", "create", name)), "api key")
    assert httpx.get(f"{api}/v1/jobs", headers=_bearer(old)).status_code == 200  # now cached

    new = _field(_ok(_infq(stack_env, "tenants", "rotate-key", name)), "api key")
    assert httpx.get(f"{api}/v1/jobs", headers=_bearer(new)).status_code == 200
    took_s = _within(
        KEY_CACHE_TTL_S + SLACK_S,
        lambda: httpx.get(f"{api}/v1/jobs", headers=_bearer(old)).status_code == 401,
        "the rotated-out key to be refused",
    )
    assert took_s <= KEY_CACHE_TTL_S + SLACK_S
    assert httpx.get(f"{api}/v1/jobs", headers=_bearer(new)).status_code == 200

    _ok(_infq(stack_env, "tenants", "revoke-key", name))
    _within(
        KEY_CACHE_TTL_S + SLACK_S,
        lambda: httpx.get(f"{api}/v1/jobs", headers=_bearer(new)).status_code == 401,
        "the revoked key to be refused",
    )
    refused = httpx.get(f"{api}/v1/jobs", headers=_bearer(new))
    assert refused.json() == {"detail": "unknown API key", "code": "unauthorized"}


def test_over_a_limit_rest_answers_429_with_retry_after(
    api: str, stack_env: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    full = _make(sessions, "full", max_queued_jobs=0)
    answer = httpx.post(f"{api}/v1/jobs", json=_job("x"), headers=_bearer(full.api_key))
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"] == str(int(QUEUE_FULL_RETRY_AFTER_S))
    assert set(answer.json()) == {"detail", "code"}
    assert answer.json()["code"] == "queue_full"
    assert f"tenant {full.tenant_id!r} has 0 jobs queued and may have 0" in answer.json()["detail"]
    # A batch upload goes through the same check, before anything is sent
    upload = httpx.post(
        f"{api}/v1/batches", params={"model": "echo"}, content='{"text": "a"}\n',
        headers=_bearer(full.api_key), timeout=30,
    )  # fmt: skip
    assert (upload.status_code, upload.json()["code"]) == (429, "queue_full"), upload.text
    assert "Retry-After" in upload.headers

    # A request larger than the limit is refused whole, with what to do instead
    small = _make(sessions, "small", max_queued_jobs=1)
    two = {"jobs": [_job("a"), _job("b")]}
    answer = httpx.post(f"{api}/v1/jobs", json=two, headers=_bearer(small.api_key))
    assert answer.status_code == 429
    assert "split the submission" in answer.json()["detail"]

    # The rate: a burst of one job a second, then a wait of about a second
    slow = _make(sessions, "slow", rate_per_s=1.0)
    first = httpx.post(f"{api}/v1/jobs", json=_job("1"), headers=_bearer(slow.api_key))
    assert first.status_code == 202, first.text
    second = httpx.post(f"{api}/v1/jobs", json=_job("2"), headers=_bearer(slow.api_key))
    assert second.status_code == 429
    assert second.json()["code"] == "rate_limited"
    assert second.headers["Retry-After"] == "1"
    assert "may submit 1 jobs/s (bursts of 1)" in second.json()["detail"]
    time.sleep(int(second.headers["Retry-After"]))
    third = httpx.post(f"{api}/v1/jobs", json=_job("3"), headers=_bearer(slow.api_key))
    assert third.status_code == 202, third.text

    # A changed limit applies within the API's limits cache
    _ok(_infq(stack_env, "tenants", "limits", full.tenant_id, "--max-queued", "unlimited"))

    def accepted() -> bool:
        sent = httpx.post(f"{api}/v1/jobs", json=_job("now"), headers=_bearer(full.api_key))
        return sent.status_code == 202

    _within(LIMITS_TTL_S + SLACK_S, accepted, "the raised limit to apply")


def test_kafka_jobs_over_the_max_queued_are_rejected_and_dead_lettered(
    settings: Settings, sessions: sessionmaker[Session], dispatcher: InfqProcess
) -> None:
    full = _make(sessions, "kfull", max_queued_jobs=0)
    free = _make(sessions, "kfree")
    refused_id, fine_id = uuid.uuid4(), uuid.uuid4()
    records = [
        orjson.dumps({"job_id": str(refused_id), "model": "echo", "input": {"text": "no"},
                      "tenant": full.tenant_id, "batch_id": unique("kb")}),
        orjson.dumps({"job_id": str(fine_id), "model": "echo", "input": {"text": "yes"},
                      "tenant": free.tenant_id}),
    ]  # fmt: skip
    send_raw(settings, settings.jobs_topic, list(records))

    rows = wait_final(sessions, [refused_id, fine_id])
    refused = rows[refused_id]
    assert (refused.status, refused.error_code, refused.tenant_id) == (
        "rejected", "tenant_queue_full", full.tenant_id)  # fmt: skip
    assert "as many jobs queued as its limit allows" in (refused.error_message or "")
    assert rows[fine_id].status == "succeeded"

    letters = read_topic(
        settings,
        settings.dlq_topic,
        until=lambda ms: any(m.get("job_id") == str(refused_id) for m in ms),
        timeout_s=30,
    )
    letter = next(m for m in letters if m.get("job_id") == str(refused_id))
    assert letter["error"]["code"] == "tenant_queue_full"
    assert orjson.loads(letter["raw"])["tenant"] == full.tenant_id
    assert not any(m.get("job_id") == str(fine_id) for m in letters)
