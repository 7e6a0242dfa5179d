"""The OpenAI-compatible surface's edge, in process with services that listen nowhere:
what is refused before any service is asked (file size, purpose, endpoints, a body
FastAPI refuses) answers in OpenAI's shape, while infq's own routes keep theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infq.api.app import create_api
from infq.api.context import current_tenant
from infq.settings import Settings


@pytest.fixture
def client(make_offline_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """The API with a 2 KiB file limit and the caller's tenant fixed (no key lookup)."""
    app = create_api(make_offline_settings(openai_max_file_bytes=2048))
    app.dependency_overrides[current_tenant] = lambda: "t"
    # A key must be named (the body is refused unread otherwise); which one, the override
    # decides.
    with TestClient(app, headers={"Authorization": "Bearer any"}) as test_client:
        yield test_client


def _error(answer: Any) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def test_a_file_over_the_limit_is_a_400_file_too_large(client: TestClient) -> None:
    answer = client.post(
        "/openai/v1/files", files={"file": ("big.jsonl", b"x" * 4096)}, data={"purpose": "batch"}
    )
    assert answer.status_code == 400
    error = _error(answer)
    assert (error["code"], error["param"], error["type"]) == (
        "file_too_large", "file", "invalid_request_error",
    )  # fmt: skip
    assert "2048" in error["message"]


def test_only_batch_files_are_taken(client: TestClient) -> None:
    answer = client.post(
        "/openai/v1/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "fine-tune"}
    )
    assert answer.status_code == 400
    assert _error(answer)["param"] == "purpose"


def test_a_missing_form_field_is_a_400_naming_it(client: TestClient) -> None:
    answer = client.post("/openai/v1/files", files={"file": ("a.jsonl", b"{}\n")})
    assert answer.status_code == 400
    error = _error(answer)
    assert error["param"] == "purpose"
    assert error["code"] == "invalid_value"


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [("/v1/responses", "does not serve /v1/responses"),
     ("/v2/other", "endpoint must be one of /v1/embeddings, /v1/chat/completions")],
)  # fmt: skip
def test_other_endpoints_are_refused_plainly(client: TestClient, endpoint: str, said: str) -> None:
    answer = client.post(
        "/openai/v1/batches",
        json={"input_file_id": "file-x", "endpoint": endpoint, "completion_window": "24h"},
    )
    assert answer.status_code == 400
    error = _error(answer)
    assert said in error["message"]
    assert error["param"] == "endpoint"


def test_a_bad_completion_window_is_a_400(client: TestClient) -> None:
    answer = client.post(
        "/openai/v1/batches",
        json={"input_file_id": "file-x", "endpoint": "/v1/embeddings", "completion_window": "x"},
    )
    assert answer.status_code == 400
    assert "completion_window" in _error(answer)["message"]


def test_unknown_paths_under_the_prefix_answer_in_openais_shape(client: TestClient) -> None:
    answer = client.get("/openai/v1/nothing-here")
    assert answer.status_code == 404
    _error(answer)


def test_infqs_own_routes_keep_their_error_shape(client: TestClient) -> None:
    answer = client.get("/v1/jobs/not-a-uuid")
    assert answer.status_code == 422
    assert {"detail", "code"} <= set(answer.json())


def test_the_models_are_the_catalogues(client: TestClient) -> None:
    listed = client.get("/openai/v1/models").json()
    assert listed["object"] == "list"
    assert {"id": "all-MiniLM-L6-v2", "object": "model", "created": 0, "owned_by": "infq"} in (
        listed["data"]
    )
    # An alias (with a slash, as Hugging Face names go) is the model under its own name
    alias = client.get("/openai/v1/models/sentence-transformers/all-MiniLM-L6-v2")
    assert alias.json()["id"] == "all-MiniLM-L6-v2"
    assert client.get("/openai/v1/models/echo").json()["id"] == "echo"
    missing = client.get("/openai/v1/models/gpt-9")
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
