"""The REST SDK (``InfqClient``) against the real API: a whole batch workflow — upload
with custom ids, wait with progress, stream ordered results and errors, list, cancel —
and the API's errors as ``ApiError`` codes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from infq.tenants.accounts import Credentials
from producers import ApiError, InfqClient


def test_a_whole_batch_workflow_through_the_sdk(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    tag = uuid.uuid4().hex[:6]
    requests: list[dict[str, Any]] = [
        {"custom_id": f"s{n}", "text": f"sdk {n} {tag}"} for n in range(5)
    ]
    requests.append({"custom_id": "bad", "text": "x", "params": {"fail": True}})
    seen: list[str] = []
    with InfqClient(api, tenants_made["alpha"].api_key) as infq:
        created = infq.create_batch(requests, model="echo", metadata={"run": tag})
        batch = infq.wait(created["batch_id"], timeout_s=120, poll_s=0.2,
                          on_progress=lambda b: seen.append(b["status"]))  # fmt: skip
        output = list(infq.results(created["batch_id"]))
        errors = list(infq.results(created["batch_id"], errors=True))
        listed = [b["batch_id"] for b in infq.list_batches(page_size=1, status="completed")]
        job = infq.get(created["job_ids"][0])
        value = infq.result(created["job_ids"][0])

    assert batch["status"] == "completed"
    assert seen[-1] == "completed"
    assert batch["metadata"] == {"run": tag}
    assert [line["custom_id"] for line in output] == [f"s{n}" for n in range(5)]
    assert [line["result"]["text"] for line in output] == [f"sdk {n} {tag}" for n in range(5)]
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [("bad", "echo_fail")]
    assert created["batch_id"] in listed
    assert job["custom_id"] == "s0"
    assert job["status"] == "succeeded"
    assert value == {"text": f"sdk 0 {tag}", "length": len(f"sdk 0 {tag}")}


def test_api_errors_come_back_as_codes(api: str, tenants_made: dict[str, Credentials]) -> None:
    with InfqClient(api, tenants_made["alpha"].api_key) as infq:
        with pytest.raises(ApiError) as missing:
            infq.get_batch("no-such-batch")
        created = infq.create_batch(["once"], model="echo")
        with pytest.raises(ApiError) as reused:
            infq.create_batch(["twice"], model="echo", batch_id=created["batch_id"])
    with InfqClient(api, "iq_not-a-key") as stranger, pytest.raises(ApiError) as denied:
        stranger.get_batch(created["batch_id"])
    assert (missing.value.status_code, missing.value.code) == (404, "not_found")
    assert (reused.value.status_code, reused.value.code) == (409, "conflict")
    assert (denied.value.status_code, denied.value.code) == (401, "unauthorized")
