"""The official ``openai`` SDK, unchanged, against infq's ``/openai/v1`` on the real
stack: files, an embeddings batch to its output file (equal to infq's own results),
list inputs and base64, a malformed file, cancel, list pagination, another tenant's
objects and a bad key."""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import openai
import orjson
import pytest
from openai import OpenAI

from infq.tenants.accounts import Credentials
from tests.integration.harness import Receiver, submit_and_wait, wait_for

MODEL = "all-MiniLM-L6-v2"


def _client(api: str, creds: Credentials) -> OpenAI:
    return OpenAI(base_url=f"{api}/openai/v1", api_key=creds.api_key, max_retries=0)


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def _request(custom_id: str, value: str | list[str], **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": MODEL, "input": value, **body}}  # fmt: skip


def _done(client: OpenAI, batch_id: str, *, timeout_s: float = 180) -> Any:
    found: Any = None

    def final() -> bool:
        nonlocal found
        found = client.batches.retrieve(batch_id)
        return found.status in ("completed", "failed", "cancelled", "expired")

    wait_for(final, timeout_s=timeout_s, what=f"batch {batch_id} to end")
    return found


def _content(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [orjson.loads(x) for x in client.files.content(file_id).content.splitlines()]


def _infq_vectors(api: str, creds: Credentials, texts: list[str]) -> list[list[float]]:
    """The same texts through infq's own /v1/jobs, computed afresh (no cache)."""
    jobs = [{"model": MODEL, "input": {"text": t}, "cache": False} for t in texts]
    return submit_and_wait(api, creds.api_key, jobs)


def test_an_embeddings_batch_runs_end_to_end_and_matches_infqs_own_results(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    client = _client(api, tenants_made["alpha"])
    tag = uuid.uuid4().hex[:8]
    texts = [f"first {tag}", f"second {tag}", f"third {tag}", f"fourth {tag}"]
    # Given a file of three requests: a string, a list of two, and base64
    body = _jsonl([
        _request("one", texts[0]),
        _request("many", [texts[1], texts[2]]),
        _request("b64", texts[3], encoding_format="base64"),
    ])  # fmt: skip
    uploaded = client.files.create(file=("input.jsonl", body), purpose="batch")
    assert (uploaded.object, uploaded.purpose, uploaded.bytes) == ("file", "batch", len(body))
    assert uploaded.id.startswith("file-")
    assert client.files.retrieve(uploaded.id).filename == "input.jsonl"
    assert client.files.content(uploaded.id).content == body

    # When it runs as a batch
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h",
        metadata={"team": "search"},
    )  # fmt: skip
    assert batch.id.startswith("batch_")
    assert batch.status in ("validating", "in_progress", "finalizing", "completed")
    done = _done(client, batch.id)

    # Then its output file holds OpenAI's embeddings responses, in input order
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed,
            done.request_counts.failed) == (3, 3, 0)  # fmt: skip
    assert done.metadata == {"team": "search"}
    assert done.completed_at is not None
    assert done.in_progress_at is not None
    output = _content(client, done.output_file_id)
    assert _content(client, done.error_file_id) == []
    assert [line["custom_id"] for line in output] == ["one", "many", "b64"]
    assert all(line["id"].startswith("batch_req_") and line["error"] is None for line in output)
    bodies = [line["response"]["body"] for line in output]
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert [len(b["data"]) for b in bodies] == [1, 2, 1]
    assert [d["index"] for d in bodies[1]["data"]] == [0, 1]
    assert all(b["object"] == "list" and b["model"] == MODEL for b in bodies)
    assert all(b["usage"]["prompt_tokens"] > 0 for b in bodies)
    assert bodies[1]["usage"]["prompt_tokens"] > bodies[0]["usage"]["prompt_tokens"]
    got = [d["embedding"] for b in bodies[:2] for d in b["data"]]
    got.append(np.frombuffer(base64.b64decode(bodies[2]["data"][0]["embedding"]), "<f4").tolist())
    expected = _infq_vectors(api, tenants_made["alpha"], texts)
    for mine, theirs in zip(got, expected, strict=True):
        assert len(mine) == 384
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
    # Converting is done once: a second read gives the same files
    again = client.batches.retrieve(batch.id)
    assert (again.output_file_id, again.error_file_id) == (done.output_file_id,
                                                            done.error_file_id)  # fmt: skip
    listed = [f.id for f in client.files.list()]
    assert {uploaded.id, done.output_file_id, done.error_file_id} <= set(listed)


def test_a_malformed_file_fails_the_batch_with_line_numbered_errors(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    client = _client(api, tenants_made["alpha"])
    good = _request("ok", "fine")
    body = b"\n".join([
        orjson.dumps(good),
        b"{not json",
        orjson.dumps({**_request("m", "x"), "body": {"model": "gpt-9", "input": "x"}}),
        orjson.dumps({"method": "POST", "url": "/v1/embeddings", "body": {}}),
        orjson.dumps(good),
    ])  # fmt: skip
    uploaded = client.files.create(file=("bad.jsonl", body), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_json_line"),
        (3, "unknown_model"),
        (4, "missing_required_parameter"),
        (5, "duplicate_custom_id"),
    ]
    assert client.batches.retrieve(batch.id).status == "failed"
    # The Responses API is not served yet: a clear 400
    with pytest.raises(openai.BadRequestError, match="/v1/responses"):
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/responses",
                              completion_window="24h")  # fmt: skip


def test_a_line_of_too_many_inputs_or_tokens_fails_the_batch_naming_the_limit(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    """One line may not become 100,000 jobs (measured before the limit: no answer within
    60 s), nor carry more tokens than OpenAI allows one request."""
    client = _client(api, tenants_made["alpha"])
    words = " ".join(["tokens"] * 200)  # 200 word pieces and 2 specials with MiniLM
    body = _jsonl([
        _request("wide", ["x"] * 100_000),
        _request("long", [words] * 2000),  # 404,000 tokens
        _request("fine", "fine"),
    ])  # fmt: skip
    uploaded = client.files.create(file=("wide.jsonl", body), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    (wide, long) = batch.errors.data
    assert (wide.line, wide.code, wide.param) == (1, "invalid_value", "body.input")
    assert wide.message is not None
    assert "100000 inputs" in wide.message
    assert "at most 2048" in wide.message
    assert (long.line, long.code) == (2, "invalid_value")
    assert long.message is not None
    assert "at most 300000" in long.message


def test_a_cancelled_batch_ends_cancelled_with_its_unrun_requests_in_the_error_file(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    client = _client(api, tenants_made["beta"])
    tag = uuid.uuid4().hex[:8]
    body = _jsonl([_request(f"r{n}", f"cancel me {n} {tag}") for n in range(300)])
    uploaded = client.files.create(file=("many.jsonl", body), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert cancelling.cancelling_at is not None
    done = _done(client, batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    errors = _content(client, done.error_file_id)
    output = _content(client, done.output_file_id)
    assert len(errors) + len(output) == 300
    assert errors, "the cancel came after every request ran"
    assert {e["error"]["code"] for e in errors} == {"cancelled"}
    assert done.request_counts is not None
    assert done.request_counts.failed == len(errors)


def test_batches_list_pages_newest_first(api: str, tenants_made: dict[str, Credentials]) -> None:
    client = _client(api, tenants_made["beta"])
    uploaded = client.files.create(file=("bad.jsonl", b"nope\n"), purpose="batch")
    made = [
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings",
                              completion_window="24h").id
        for _ in range(3)
    ]  # fmt: skip
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2]
    assert first.has_more
    second = client.batches.list(limit=2, after=first.data[-1].id)
    assert second.data[0].id == made[0]
    every = [b.id for b in client.batches.list(limit=1)]
    assert every[:3] == made[::-1]


def test_another_tenants_objects_are_not_found_and_a_bad_key_is_refused(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha, beta = _client(api, tenants_made["alpha"]), _client(api, tenants_made["beta"])
    uploaded = alpha.files.create(file=("a.jsonl", b"nope\n"), purpose="batch")
    batch = alpha.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    for attempt in (
        lambda: beta.files.retrieve(uploaded.id),
        lambda: beta.files.content(uploaded.id),
        lambda: beta.files.delete(uploaded.id),
        lambda: beta.batches.retrieve(batch.id),
        lambda: beta.batches.cancel(batch.id),
        lambda: beta.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings",
                                    completion_window="24h"),
    ):  # fmt: skip
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert uploaded.id not in [f.id for f in beta.files.list()]
    assert batch.id not in [b.id for b in beta.batches.list()]
    # The owner still sees it, and deletes it
    assert alpha.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        alpha.files.retrieve(uploaded.id)
    bad = OpenAI(base_url=f"{api}/openai/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.models.list()
    assert caught.value.code == "invalid_api_key"
    assert MODEL in [m.id for m in alpha.models.list()]
    with pytest.raises(openai.BadRequestError):
        alpha.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")


def test_requests_that_race_on_a_finished_batch_convert_its_files_once(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    creds = tenants_made["alpha"]
    client = _client(api, creds)
    tag = uuid.uuid4().hex[:8]
    body = _jsonl([_request(f"r{n}", f"race {n} {tag}") for n in range(3)])
    uploaded = client.files.create(file=("race.jsonl", body), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    # Given the batch finished on infq's own surface, never read on the OpenAI one
    auth = {"Authorization": f"Bearer {creds.api_key}"}

    def finished() -> bool:
        view = httpx.get(f"{api}/v1/batches/{batch.id}", headers=auth).json()
        return view.get("finished_at") is not None

    wait_for(finished, timeout_s=120, what=f"batch {batch.id} to finish")
    # When several requests read it at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        seen = list(pool.map(lambda _: client.batches.retrieve(batch.id), range(4)))
    # Then all see the same files, registered once
    assert {(b.status, b.output_file_id, b.error_file_id) for b in seen} == {
        ("completed", seen[0].output_file_id, seen[0].error_file_id)
    }
    ids: list[str | None] = [f.id for f in client.files.list()]
    assert ids.count(seen[0].output_file_id) == 1
    assert len(_content(client, seen[0].output_file_id)) == 3


def test_a_webhook_named_in_the_metadata_is_called_signed_when_the_batch_ends(
    api: str, tenants_made: dict[str, Credentials]
) -> None:
    alpha = tenants_made["alpha"]
    client = _client(api, alpha)
    receiver = Receiver(alpha.webhook_secret)
    try:
        uploaded = client.files.create(
            file=("hook.jsonl", _jsonl([_request("h1", f"hook {uuid.uuid4()}")])), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h",
            metadata={"infq_webhook_url": receiver.url},
        )  # fmt: skip
        assert _done(client, batch.id).status == "completed"
        wait_for(lambda: len(receiver.received) == 1, timeout_s=60, what="the batch webhook")
        with pytest.raises(openai.BadRequestError):
            client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h",
                metadata={"infq_webhook_url": "ftp://nowhere"},
            )  # fmt: skip
    finally:
        receiver.close()
    hook = receiver.received[0]
    assert hook["verified"]
    assert hook["body"]["event"] == "batch.completed"
    assert hook["body"]["batch_id"] == batch.id
