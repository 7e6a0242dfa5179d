"""How tenant limits and bad tenant input reach people: the 429 of the REST API (body,
``Retry-After``, OpenAPI) and the CLI's one-line errors, before anything connects."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from infq.api.app import create_api
from infq.api.errors import expected_error, retry_after
from infq.cli.exits import ExitCode, explain
from infq.errors import OverLimit
from infq.settings import Settings


def test_an_over_limit_error_is_a_429_with_retry_after() -> None:
    answer = expected_error(
        OverLimit("rate_limited", "tenant 't' may submit 1 jobs/s", tenant="t", retry_after_s=0.3)
    )
    assert answer is not None
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "1"
    assert orjson.loads(answer.body) == {
        "detail": "tenant 't' may submit 1 jobs/s",
        "code": "rate_limited",
    }


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "1"), (0.01, "1"), (1.0, "1"), (2.1, "3")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert retry_after(seconds) == {"Retry-After": header}


def test_the_cli_exits_with_its_own_status_when_a_limit_refuses() -> None:
    failure = explain(OverLimit("queue_full", "tenant 'default' has …", tenant="default",
                                retry_after_s=10))  # fmt: skip
    assert failure is not None
    assert (failure.code, failure.message) == (ExitCode.LIMITED, "tenant 'default' has …")


def test_openapi_documents_the_429_of_job_submission(offline_settings: Settings) -> None:
    with TestClient(create_api(offline_settings)) as client:
        spec: dict[str, Any] = client.get("/openapi.json").json()
    limited = spec["paths"]["/v1/jobs"]["post"]["responses"]["429"]
    assert "queue_full" in limited["description"]
    assert "rate_limited" in limited["description"]
    assert limited["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    assert limited["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


# --- the real command; the recorded stack listens nowhere, so these must not connect ---


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["create", "../x"], "invalid tenant name '../x': '/' not allowed (use lowercase "
         "letters, digits, '.', '_' and '-')"),
        (["create", "A B"], "invalid tenant name 'A B': ' ', 'A', 'B' not allowed (use "
         "lowercase letters, digits, '.', '_' and '-')"),
        (["create", ""], "invalid tenant name '': it is empty (use 1 to 64 lowercase letters, "
         "digits, '.', '_' and '-')"),
        (["create", "acme", "--max-queued", "-5"], "--max-queued: -5 is below 0"),
        (["limits", "acme", "--max-queued", "lots"],
         "--max-queued: 'lots' is not a whole number or 'unlimited'"),
        (["limits", "acme", "--rate", "0"], "--rate: 0 jobs/s; it must be above 0"),
        (["limits", "acme", "--rate", "nan"], "--rate: nan jobs/s; it must be above 0"),
    ],
)  # fmt: skip
def test_bad_tenant_input_is_one_line_and_exit_4(
    stack_down: dict[str, str], args: list[str], line: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infq", "tenants", *args],
        env=stack_down,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == ExitCode.INVALID_INPUT, done.stderr
    assert done.stderr == f"infq: error: {line}\n"
