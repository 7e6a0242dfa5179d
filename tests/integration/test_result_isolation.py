"""A result URL never serves another tenant's bytes, whatever the client sends.

A worker flush mixes tenants (jobs are batched by lane). The flush used to write one
object for all of them, and a presigned URL fetched without its ``Range`` header (as
``curl``, a browser or most HTTP libraries fetch it) served every tenant's results in
that flush. Reproduced here on the real stack: two tenants' jobs in one flush, each
URL fetched with and without ``Range``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import orjson
from sqlalchemy import select

from infq.bus.celery import create_app
from infq.bus.messages import WorkItem
from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.db.jobs import insert_new
from infq.db.models import Job
from infq.db.result_ref import object_range
from infq.results.layout import parse_line
from infq.results.store import S3ResultStore
from infq.settings import Settings
from tests.integration.harness import isolated_env, settings_for, wait_final
from workers.context import WorkerContext
from workers.engine import Engine

MODEL, REVISION = "echo", "echo-1"
TENANTS = ("acme", "globex")


def test_two_tenants_in_one_flush_each_fetch_only_their_own_results(
    stack_env: dict[str, str], settings: Settings
) -> None:
    # Given a worker whose results all leave Postgres (inline limit 0) and a flush of 6
    env = isolated_env(
        stack_env,
        settings,
        name="isolation",
        extra={"INFQ_MAX_BATCH_SIZE": "6", "INFQ_INLINE_RESULT_MAX_BYTES": "0"},
    )
    own = settings_for(env)
    ctx = WorkerContext.build(
        own, catalogue=Catalogue(builtin_entries()), lanes=[MODEL], celery=create_app(own)
    )
    jobs = {uuid.uuid4(): TENANTS[n % 2] for n in range(6)}
    with ctx.sessions.begin() as session:
        insert_new(session, [
            {"job_id": i, "tenant_id": t, "status": "queued", "model": MODEL,
             "model_revision": REVISION, "task": "echo", "priority": 0,
             "input": {"text": f"secret of {t} {i}"}, "created_at": datetime.now(UTC)}
            for i, t in jobs.items()
        ])  # fmt: skip
    engine = Engine(ctx)
    engine.start()
    try:
        # When both tenants' jobs arrive together and run in one flush
        engine.submit([
            WorkItem(job_id=str(i), model=MODEL, revision=REVISION, task="echo",
                     text=f"secret of {t} {i}", params={}, tenant=t)
            for i, t in jobs.items()
        ])  # fmt: skip
        rows = wait_final(ctx.sessions, jobs, timeout_s=60)
    finally:
        engine.stop()
        ctx.close()
    assert {r.status for r in rows.values()} == {"succeeded"}
    assert len({r.worker_batch_id for r in rows.values()}) == 1, "not one flush"

    # Then each tenant's results are in an object of their own: one PUT per tenant
    uris = {t: {r.result_uri for r in rows.values() if r.tenant_id == t} for t in TENANTS}
    assert all(len(u) == 1 for u in uris.values()), uris
    assert uris["acme"] != uris["globex"]

    # And a URL fetched without Range serves its tenant's lines only, with Range its own
    store = S3ResultStore.from_settings(own)
    for job_id, tenant in jobs.items():
        ref = object_range(rows[job_id])
        assert ref is not None
        url = store.presign(ref.uri, expires_s=60)
        whole = httpx.get(url, timeout=10)
        assert whole.status_code == 200
        served = [orjson.loads(line)["job_id"] for line in whole.content.splitlines()]
        assert str(job_id) in served
        assert {jobs[uuid.UUID(j)] for j in served} == {tenant}
        end = ref.offset + ref.length - 1
        ranged = httpx.get(url, headers={"Range": f"bytes={ref.offset}-{end}"}, timeout=10)
        assert ranged.status_code == 206
        assert orjson.loads(ranged.content)["job_id"] == str(job_id)
        text = f"secret of {tenant} {job_id}"
        assert parse_line(ranged.content) == {"text": text, "length": len(text)}
    with ctx.sessions() as session:
        others = session.scalars(select(Job.job_id).where(Job.result_uri.in_(uris["acme"])))
        assert {jobs[j] for j in others} == {"acme"}
