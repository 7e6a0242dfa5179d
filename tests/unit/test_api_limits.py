"""Bodies are bounded before they are read (infq.api.limits), in process with services
that listen nowhere: a refusal here needs no service, which is the point. The same on
a real API process, with its memory measured: tests/integration/test_api_limits.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from infq.api.app import create_api
from infq.api.limits import BodyLimits
from infq.settings import Settings

LIMIT = 4096
KEY = {"Authorization": "Bearer iq_some-key"}


@pytest.fixture
def client(make_offline_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_offline_settings(api_max_body_bytes=LIMIT, openai_max_file_bytes=LIMIT)
    with TestClient(create_api(settings), raise_server_exceptions=False) as c:
        yield c


class Counted:
    """A chunked request body that counts how many chunks the server pulled. (The test
    client drains a body the app stopped reading, so only "nothing read" can be seen
    here; what a real server holds is measured in the integration test.)"""

    def __init__(self, chunks: int, size: int = 1024) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * self.size


@pytest.mark.parametrize("headers", [{}, KEY])
def test_a_declared_length_over_the_limit_is_413_before_the_key_is_looked_at(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = Counted(64)
    answer = client.post(
        "/v1/jobs", content=body, headers={**headers, "Content-Length": str(64 * 1024)}
    )
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": f"the request body is {64 * 1024} bytes; the limit is {LIMIT}",
        "code": "too_large",
    }
    assert body.pulled <= 1


def test_a_chunked_body_is_counted_as_it_arrives(client: TestClient) -> None:
    body = Counted(1000)  # 1000 KiB, no Content-Length
    answer = client.post("/v1/jobs", content=body, headers=KEY)
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": f"the request body is over the limit of {LIMIT} bytes",
        "code": "too_large",
    }


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches?model=echo", "/openai/v1/batches"])
def test_a_body_without_a_key_is_refused_unread(client: TestClient, path: str) -> None:
    body = Counted(3)
    answer = client.post(path, content=body)
    assert answer.status_code == 401
    assert body.pulled <= 1
    if path.startswith("/openai"):
        assert answer.json()["error"]["code"] == "invalid_api_key"
    else:
        assert answer.json()["detail"].startswith("missing API key")


def test_an_upload_past_the_file_limit_is_refused_as_it_arrives(client: TestClient) -> None:
    body = Counted(1000, size=1024)
    answer = client.post(
        "/openai/v1/files",
        content=body,
        headers={**KEY, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413
    assert set(answer.json()) == {"error"}


def test_the_longest_prefix_sets_the_limit() -> None:
    limits = BodyLimits(
        lambda scope, receive, send: None,  # type: ignore[arg-type, return-value]
        default_bytes=10,
        by_prefix=[("/a", 20), ("/a/b", 30)],
    )
    assert [limits.limit_of(p) for p in ("/x", "/a/x", "/a/b/c")] == [10, 20, 30]
