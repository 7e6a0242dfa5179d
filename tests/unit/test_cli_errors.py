"""Expected errors of the ``infq`` command: one line naming the fix, one exit status per
kind, no traceback; a bug keeps its traceback.

The subprocess tests run the real command against a recorded stack whose ports nothing
listens on: exactly what a person sees after a reboot, before ``infq stack up``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import kombu.exceptions
import psycopg
import pytest
import redis.exceptions
import sqlalchemy.exc
from kafka.errors import KafkaTimeoutError
from pydantic import ValidationError

from infq.cli.exits import ExitCode, explain
from infq.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    PublishFailed,
    ServiceUnavailable,
    StackError,
    UnknownModel,
)
from infq.outages import outage_of
from infq.settings import Settings


def _caused(error: Exception, cause: Exception) -> Exception:
    """``error`` as raised ``from cause``."""
    try:
        raise error from cause
    except Exception as e:
        return e


def _sqlalchemy(orig: Exception) -> Exception:
    return _caused(sqlalchemy.exc.OperationalError("SELECT 1", {}, orig), orig)


@pytest.mark.parametrize(
    ("error", "service"),
    [
        (_sqlalchemy(psycopg.OperationalError("connection failed: Connection refused")),
         "postgres"),
        (psycopg.errors.AdminShutdown("terminating connection"), "postgres"),
        (KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1"), "kafka"),
        (PublishFailed(failed=1, total=1), "kafka"),
        (redis.exceptions.ConnectionError("Error 111 connecting"), "redis"),
        (kombu.exceptions.OperationalError("Error 111 connecting"), "redis"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "s3"),
        (_caused(InvalidInput("reading the result failed"),
                 botocore.exceptions.EndpointConnectionError(endpoint_url="http://h")), "s3"),
    ],
)  # fmt: skip
def test_outages_of_each_client_library_name_their_service(error: Exception, service: str) -> None:
    failure = explain(error)
    assert failure is not None
    assert failure.code is ExitCode.UNAVAILABLE
    assert failure.message.startswith(f"{service} is not reachable")
    assert "`infq stack up` starts the local stack" in failure.message


def test_a_statement_error_is_not_an_outage() -> None:
    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    assert outage_of(_sqlalchemy(deadlock)) is None


def test_a_bug_raised_while_handling_an_outage_keeps_its_traceback() -> None:
    try:
        try:
            raise redis.exceptions.ConnectionError("Error 111")
        except redis.exceptions.ConnectionError:
            known: dict[str, int] = {}
            known["missing"]  # a bug in the handler: only its __context__ is the outage
    except KeyError as e:
        bug = e
    assert explain(bug) is None
    assert explain(RuntimeError("boom")) is None


def _invalid_settings() -> ValidationError:
    try:
        Settings(max_batch_size=0)
    except ValidationError as e:
        return e
    raise AssertionError("max_batch_size=0 was accepted")


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (ConfigurationError("INFQ_DATABASE_URL is not set"), ExitCode.CONFIGURATION,
         "INFQ_DATABASE_URL is not set"),
        (_invalid_settings(), ExitCode.CONFIGURATION,
         "INFQ_MAX_BATCH_SIZE=0: Input should be greater than or equal to 1"),
        (StackError("kafka", "did not become healthy"), ExitCode.UNAVAILABLE,
         "kafka: did not become healthy"),
        (UnknownModel("gpt4", ["echo"]), ExitCode.INVALID_INPUT,
         "unknown model 'gpt4'; known: echo"),
        (InvalidInput("jobs.jsonl: line 2: not JSON"), ExitCode.INVALID_INPUT,
         "jobs.jsonl: line 2: not JSON"),
        (NotFound("job", "0b7f3c9e"), ExitCode.NOT_FOUND, "no job 0b7f3c9e"),
        (Conflict("job 0b7f3c9e is running; only queued jobs can be cancelled"),
         ExitCode.FAILED, "job 0b7f3c9e is running; only queued jobs can be cancelled"),
        (ServiceUnavailable(["kafka", "redis", "postgres"]), ExitCode.UNAVAILABLE,
         "kafka, redis and postgres are not reachable; `infq stack up` starts the local "
         "stack (or check INFQ_KAFKA_BOOTSTRAP, INFQ_BROKER_URL, INFQ_DATABASE_URL)"),
    ],
)  # fmt: skip
def test_each_kind_has_its_exit_status(error: Exception, code: ExitCode, line: str) -> None:
    failure = explain(error)
    assert failure is not None
    assert (failure.code, failure.message) == (code, line)


def test_exit_statuses_are_distinct() -> None:
    assert len({c.value for c in ExitCode}) == len(ExitCode)


# --- the real command, with the stack down ---


def _infq(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_with_the_stack_down_names_every_service_and_the_fix(
    stack_down: dict[str, str],
) -> None:
    done = _infq(["status"], stack_down)
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    line = done.stderr.strip()
    assert line.startswith("infq: error: kafka, redis, s3 and postgres are not reachable;")
    assert "`infq stack up` starts the local stack" in line
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "service"),
    [
        (["status", "0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11"], "postgres"),
        (["tenants", "list"], "postgres"),
        (["submit", "{jobs}", "--model", "echo"], "kafka and postgres are"),
    ],
)
def test_a_command_whose_service_is_down_says_which(
    stack_down: dict[str, str], tmp_path: Path, args: list[str], service: str
) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"text": "hello"}\n')
    done = _infq([a.replace("{jobs}", str(jobs)) for a in args], stack_down)
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    named = service if service.endswith(" are") else f"{service} is"
    assert done.stderr.startswith(f"infq: error: {named} not reachable")
    assert done.stderr.count("\n") == 1
    assert "infq stack up" in done.stderr


@pytest.mark.parametrize(
    ("env", "args", "code", "line"),
    [
        ({"INFQ_MAX_BATCH_SIZ": "8"}, ["status"], ExitCode.CONFIGURATION,
         "unknown setting INFQ_MAX_BATCH_SIZ; did you mean INFQ_MAX_BATCH_SIZE?"),
        ({"INFQ_MAX_BATCH_SIZE": "0"}, ["status"], ExitCode.CONFIGURATION,
         "INFQ_MAX_BATCH_SIZE=0: Input should be greater than or equal to 1"),
        ({}, ["models", "route", "gpt4", "v1=100"], ExitCode.INVALID_INPUT,
         "unknown model 'gpt4'; known: all-MiniLM-L6-v2, echo"),
        ({}, ["submit", "{bad}", "--model", "echo"], ExitCode.INVALID_INPUT,
         "{bad}: line 1: unknown fields ['txt']"),
        ({}, ["status", "not-a-job"], ExitCode.INVALID_INPUT,
         "'not-a-job' is not a job id (a UUID)"),
        # Checked as the dispatcher checks, before Kafka is even asked
        ({}, ["submit", "{jobs}", "--model", "gpt4"], ExitCode.INVALID_INPUT,
         "unknown model 'gpt4'; known: all-MiniLM-L6-v2, echo"),
        ({}, ["precompute", "{jobs}", "--model", "gpt4"], ExitCode.INVALID_INPUT,
         "unknown model 'gpt4'; known: all-MiniLM-L6-v2, echo"),
        ({}, ["submit", "{params}", "--model", "echo"], ExitCode.INVALID_INPUT,
         "{params}: line 3: params.upper: Input should be a valid boolean, unable to "
         "interpret input (model 'echo')"),
        ({}, ["submit", "{params}", "--model", "all-MiniLM-L6-v2"], ExitCode.INVALID_INPUT,
         "{params}: line 3: params.upper: Extra inputs are not permitted "
         "(model 'all-MiniLM-L6-v2')"),
        ({"INFQ_MAX_INPUT_BYTES": "4"}, ["submit", "{jobs}", "--model", "echo"],
         ExitCode.INVALID_INPUT, "{jobs}: line 1: input.text: 5 bytes; the limit is 4"),
        ({}, ["submit", "{jobs}", "--model", "echo", "--webhook-url", "ftp://example.com/x"],
         ExitCode.INVALID_INPUT,
         "refused callback URL 'ftp://example.com/x': only http and https callbacks are "
         "allowed, got 'ftp'"),
        ({}, ["jobs", "show", "not-a-job"], ExitCode.INVALID_INPUT,
         "'not-a-job' is not a job id (a UUID)"),
        ({}, ["jobs", "list", "--since", "yesterday"], ExitCode.INVALID_INPUT,
         "--since: 'yesterday' is not an ISO 8601 time"),
        ({}, ["jobs", "list", "--after", "not-a-cursor"], ExitCode.INVALID_INPUT,
         "cursor: not a cursor this API gave out (pass next_cursor as it came)"),
    ],
)  # fmt: skip
def test_expected_errors_are_one_line_with_their_exit_status(
    stack_down: dict[str, str],
    tmp_path: Path,
    env: dict[str, str],
    args: list[str],
    code: ExitCode,
    line: str,
) -> None:
    files = {
        "{bad}": '{"txt": "hello"}\n',
        "{jobs}": '{"text": "hello"}\n',
        "{params}": '{"text": "fine"}\n\n{"text": "x", "params": {"upper": "very"}}\n',
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / f"{name.strip('{}')}.jsonl"
        paths[name].write_text(content)

    def placed(text: str) -> str:
        for name, path in paths.items():
            text = text.replace(name, str(path))
        return text

    done = _infq([placed(a) for a in args], {**stack_down, **env})
    assert done.returncode == code, done.stderr
    assert done.stderr == f"infq: error: {placed(line)}\n"


def test_an_unknown_status_filter_lists_the_statuses(stack_down: dict[str, str]) -> None:
    done = _infq(["jobs", "list", "--status", "queued,done"], stack_down)
    assert done.returncode == ExitCode.INVALID_INPUT, done.stderr
    assert done.stderr.startswith(
        "infq: error: status: unknown status 'done'; statuses: queued, running, succeeded"
    )
    assert done.stderr.count("\n") == 1
