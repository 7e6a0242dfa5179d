"""Listing and reading jobs on the real stack: ``GET /v1/jobs`` with filters and cursor
pages, and ``infq jobs list|show|cancel`` through the real command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.tenants.accounts import Credentials
from infq.tenants.accounts import create as create_tenant
from tests.integration.harness import InfqProcess, unique, wait_final, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gamma(sessions: sessionmaker[Session]) -> Credentials:
    """A tenant of this module alone, so its listing holds only this module's jobs."""
    with sessions.begin() as session:
        creds = create_tenant(session, unique("gamma"))
    assert creds is not None
    return creds


def _auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key}"}


def _submit(api: str, creds: Credentials, *jobs: dict[str, Any]) -> list[uuid.UUID]:
    answer = httpx.post(f"{api}/v1/jobs", json={"jobs": list(jobs)}, headers=_auth(creds))
    assert answer.status_code == 202, answer.text
    return [uuid.UUID(i) for i in answer.json()["job_ids"]]


def _echo(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "echo", "input": {"text": text}, **fields}


def _list(api: str, creds: Credentials, **params: Any) -> dict[str, Any]:
    answer = httpx.get(f"{api}/v1/jobs", params=params, headers=_auth(creds))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _infq(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infq", *args],
        env={**os.environ, **env, "COLUMNS": "250"},  # a table as wide as its rows
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def listed(api: str, gamma: Credentials, sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Five finished jobs of gamma's (three in one batch, one that fails)."""
    batch = unique("listing")
    ids = _submit(api, gamma, *(_echo(f"in batch {n}", batch_id=batch) for n in range(3)))
    ids += _submit(api, gamma, _echo("alone"))
    ids += _submit(api, gamma, _echo("fails", params={"fail": True}))
    rows = wait_final(sessions, ids)
    return {"ids": ids, "batch": batch, "rows": rows}


def test_pages_cover_every_job_once_newest_first_while_new_jobs_arrive(
    api: str, gamma: Credentials, sessions: sessionmaker[Session], listed: dict[str, Any]
) -> None:
    before = {str(i) for i in listed["ids"]}
    # Given a first page of two
    page = _list(api, gamma, limit=2)
    assert len(page["data"]) == 2
    assert page["has_more"] is True
    seen = [j["job_id"] for j in page["data"]]
    # When new jobs arrive between pages
    newer = _submit(api, gamma, _echo("newer 1"), _echo("newer 2"))
    wait_final(sessions, newer)
    # Then paging on from the cursor yields the rest of the old jobs, none twice, no new one
    while page["has_more"]:
        page = _list(api, gamma, limit=2, after=page["next_cursor"])
        seen += [j["job_id"] for j in page["data"]]
    assert page["next_cursor"] is None
    assert len(seen) == len(set(seen))
    assert before <= set(seen)
    assert not {str(i) for i in newer} & set(seen)
    # And a fresh listing holds the new jobs before the old, everything newest first
    fresh = _list(api, gamma, limit=1000)["data"]
    order = [j["job_id"] for j in fresh]
    assert max(order.index(str(i)) for i in newer) < min(order.index(i) for i in before)
    keys = [(datetime.fromisoformat(j["created_at"]), uuid.UUID(j["job_id"])) for j in fresh]
    assert keys == sorted(keys, reverse=True)


def test_each_item_is_the_job_as_get_shows_it(
    api: str, gamma: Credentials, listed: dict[str, Any]
) -> None:
    for item in _list(api, gamma, batch_id=listed["batch"])["data"]:
        one = httpx.get(f"{api}/v1/jobs/{item['job_id']}", headers=_auth(gamma)).json()
        assert item == one


def test_filters_by_status_batch_and_time(
    api: str, gamma: Credentials, alpha_jobs: list[uuid.UUID], listed: dict[str, Any]
) -> None:
    ids, rows = listed["ids"], listed["rows"]
    failed = {str(i) for i in ids if rows[i].status == "failed"}
    assert len(failed) == 1

    def listed_ids(**params: Any) -> set[str]:
        return {j["job_id"] for j in _list(api, gamma, limit=1000, **params)["data"]}

    assert listed_ids(status="failed") == failed
    assert listed_ids(status="failed,cancelled") == failed
    both = httpx.get(f"{api}/v1/jobs?status=failed&status=succeeded&limit=1000",
                     headers=_auth(gamma)).json()  # fmt: skip
    assert {str(i) for i in ids} <= {j["job_id"] for j in both["data"]}
    assert listed_ids(batch_id=listed["batch"]) == {str(i) for i in ids[:3]}
    # created_after is inclusive, created_before exclusive
    at = min(rows[i].created_at for i in ids)
    assert {str(i) for i in ids} <= listed_ids(created_after=at.isoformat())
    assert not {str(i) for i in ids} & listed_ids(created_before=at.isoformat())
    later = (max(rows[i].created_at for i in ids) + timedelta(hours=1)).isoformat()
    assert listed_ids(created_after=later) == set()
    # Another tenant's jobs are never listed
    assert not {str(i) for i in alpha_jobs} & listed_ids()


@pytest.fixture(scope="module")
def alpha_jobs(
    api: str, tenants_made: dict[str, Credentials], sessions: sessionmaker[Session]
) -> list[uuid.UUID]:
    """A finished job of another tenant."""
    ids = _submit(api, tenants_made["alpha"], _echo("alpha's"))
    wait_final(sessions, ids)
    return ids


@pytest.mark.parametrize(
    ("params", "starts"),
    [
        ({"limit": 0}, "query.limit: "),
        ({"limit": 1001}, "query.limit: "),
        ({"status": "done"}, "status: unknown status 'done'; statuses: queued, running"),
        ({"after": "not-a-cursor"}, "cursor: not a cursor this API gave out"),
        ({"created_after": "yesterday"}, "query.created_after: "),
    ],
)
def test_bad_queries_are_422_naming_the_parameter(
    api: str, gamma: Credentials, params: dict[str, Any], starts: str
) -> None:
    answer = httpx.get(f"{api}/v1/jobs", params=params, headers=_auth(gamma))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_request"
    assert answer.json()["detail"].startswith(starts)


def test_the_cli_lists_and_shows_what_the_api_does(
    api: str, stack_env: dict[str, str], gamma: Credentials, listed: dict[str, Any]
) -> None:
    # The same page, as JSON, straight from Postgres
    done = _infq(["jobs", "list", "--tenant", gamma.tenant_id, "--limit", "3", "--json"],
                 stack_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    rest = _list(api, gamma, limit=3)
    assert [j["job_id"] for j in body["data"]] == [j["job_id"] for j in rest["data"]]
    assert body["has_more"] is True
    # Filters and the table
    failed = next(str(i) for i in listed["ids"] if listed["rows"][i].status == "failed")
    table = _infq(["jobs", "list", "--tenant", gamma.tenant_id, "--status", "failed"], stack_env)
    assert table.returncode == 0, table.stderr
    assert failed in table.stdout
    assert "echo_fail" in table.stdout
    batch = _infq(["jobs", "list", "--tenant", gamma.tenant_id, "--batch", listed["batch"],
                   "--json"], stack_env)  # fmt: skip
    assert {j["job_id"] for j in json.loads(batch.stdout)["data"]} == {
        str(i) for i in listed["ids"][:3]
    }
    # The default tenant's listing does not hold gamma's jobs
    default = json.loads(_infq(["jobs", "list", "--json", "--limit", "1000"], stack_env).stdout)
    assert failed not in {j["job_id"] for j in default["data"]}
    # show is what `infq status JOB_ID` shows
    shown = _infq(["jobs", "show", failed, "--json"], stack_env)
    status = _infq(["status", failed, "--json"], stack_env)
    assert shown.returncode == status.returncode == 0, shown.stderr + status.stderr
    assert json.loads(shown.stdout) == json.loads(status.stdout)
    assert json.loads(shown.stdout)["error"]["code"] == "echo_fail"
    other = _infq(["jobs", "show", failed, "--tenant", "default"], stack_env)
    assert (other.returncode, other.stderr) == (5, f"infq: error: no job {failed}\n")


def test_the_cli_cancels_only_queued_jobs(
    api: str,
    stack_env: dict[str, str],
    gamma: Credentials,
    worker: InfqProcess,
    sessions: sessionmaker[Session],
    listed: dict[str, Any],
) -> None:
    # A final job is not cancelled: exit 1 and the reason in one line
    finished = str(listed["ids"][0])
    done = _infq(["jobs", "cancel", finished], stack_env)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"infq: error: job {finished} is succeeded; only queued jobs can be cancelled\n"
    )
    unknown = str(uuid.uuid4())
    done = _infq(["jobs", "cancel", unknown], stack_env)
    assert (done.returncode, done.stderr) == (5, f"infq: error: no job {unknown}\n")
    # Given a worker that is paused, so a new job stays queued
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        [queued] = _submit(api, gamma, _echo(f"to cancel {uuid.uuid4()}"))

        def recorded() -> bool:
            answer = httpx.get(f"{api}/v1/jobs/{queued}", headers=_auth(gamma))
            return answer.status_code == 200

        wait_for(recorded, timeout_s=30, what="the job to be recorded")
        # When the operator cancels it
        done = _infq(["jobs", "cancel", str(queued)], stack_env)
        assert done.returncode == 0, done.stderr
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    # Then it ends cancelled without ever starting, and is announced like any final job
    row = wait_final(sessions, [queued])[queued]
    assert (row.status, row.started_at) == ("cancelled", None)
    wait_for(lambda: wait_final(sessions, [queued])[queued].notified_at is not None,
             timeout_s=30, what="the cancellation to be announced")  # fmt: skip
