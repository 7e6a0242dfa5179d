"""An attacker's bodies against a real API process (uvicorn), its memory measured.

A 64 MiB body without a key used to grow the API's memory by 718 MiB before its 401:
FastAPI parsed the body before the key check. Here 1 GiB bodies, declared and chunked,
with and without a key, are refused while the process stays within a few MiB.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infq.stack.processes import free_port
from infq.tenants.accounts import Credentials
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import InfqProcess, wait_api

GIB = 1024**3
CHUNK = 1024 * 1024
LIMIT = CHUNK  # INFQ_API_MAX_BODY_BYTES for this API: what one request may hold


@pytest.fixture(scope="module")
def own_api(stack_env: dict[str, str]) -> Iterator[tuple[int, InfqProcess]]:
    port = free_port()
    env = {**stack_env, "INFQ_API_PORT": str(port), "INFQ_API_MAX_BODY_BYTES": str(LIMIT)}
    proc = InfqProcess(["api"], env=env, log_path=LOG_DIR / "api-limits.log")
    wait_api(f"http://127.0.0.1:{port}")
    yield port, proc
    proc.stop()


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _post(port: int, path: str, headers: dict[str, str], *, chunked: bool) -> tuple[int, int]:
    """POST up to 1 GiB, stopping as soon as the server answers; (status, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(GIB)}
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, **framing}.items())
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
    block = b"x" * CHUNK
    piece = f"{CHUNK:x}\r\n".encode() + block + b"\r\n" if chunked else block
    sent, deadline = 0, time.monotonic() + 60
    while sent < GIB and time.monotonic() < deadline:
        if select.select([sock], [], [], 0)[0]:
            break  # answered (or closed): stop sending
        try:
            sock.sendall(piece)
        except OSError:
            break
        sent += CHUNK
    answer = b""
    while b"\r\n" not in answer and time.monotonic() < deadline + 10:
        try:
            got = sock.recv(4096)
        except OSError:
            break
        if not got:
            break
        answer += got
    sock.close()
    assert answer.startswith(b"HTTP/1.1 "), f"no answer after {sent} bytes: {answer!r}"
    return int(answer.split(b" ", 2)[1]), sent


@pytest.mark.parametrize(
    ("path", "keyed", "chunked", "status"),
    [
        ("/v1/jobs", False, False, 413),
        ("/v1/jobs", False, True, 401),
        ("/v1/jobs", True, True, 413),
        ("/v1/batches?model=echo", True, True, 413),
        ("/openai/v1/files", False, True, 401),
    ],
)
def test_a_gib_body_is_refused_with_memory_flat(
    own_api: tuple[int, InfqProcess],
    tenants_made: dict[str, Credentials],
    path: str,
    keyed: bool,
    chunked: bool,
    status: int,
) -> None:
    port, proc = own_api
    headers = {"Content-Type": "application/json"}
    if keyed:
        headers["Authorization"] = f"Bearer {tenants_made['alpha'].api_key}"
    before = _rss_bytes(proc.pid)
    answered, sent = _post(port, path, headers, chunked=chunked)
    grown = _rss_bytes(proc.pid) - before
    assert answered == status
    assert sent < 64 * CHUNK, f"the server read {sent} bytes before answering"
    assert grown < 8 * CHUNK, f"the API grew by {grown / CHUNK:.1f} MiB"
    # And the API still answers
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def _answer_to_headers_alone(port: int, path: str, headers: dict[str, str]) -> bytes:
    """Send a request's headers declaring a body, never the body; what the server says
    within 5 s (b"" when it waits for the body, as it must for a caller it accepts)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    framing = {"Content-Type": "application/json", "Content-Length": str(LIMIT // 2)}
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, **framing}.items())
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())
    answer = b""
    try:
        while got := sock.recv(4096):  # the status line and the body come apart
            answer += got
            fields, _, body = answer.partition(b"\r\n\r\n")
            length = next(
                (int(h.split(b":")[1]) for h in fields.split(b"\r\n")
                 if h.lower().startswith(b"content-length:")), None,
            )  # fmt: skip
            if length is not None and len(body) >= length:
                break
    except TimeoutError:
        pass
    finally:
        sock.close()
    return answer


@pytest.mark.parametrize(
    ("path", "key", "why"),
    [
        ("/v1/jobs", None, b"missing API key"),
        ("/v1/jobs", "infq_not-a-key", b"unknown API key"),
        ("/v1/batches?model=echo", "infq_not-a-key", b"unknown API key"),
        ("/openai/v1/files", "infq_not-a-key", b"unknown API key"),
    ],
)
def test_a_body_without_a_known_key_is_refused_before_it_is_sent(
    own_api: tuple[int, InfqProcess], path: str, key: str | None, why: bytes
) -> None:
    """A wrong key costs the API no body at all: the key is looked up from the headers,
    so the 401 comes before the client has sent a byte of its body."""
    port, _ = own_api
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    answer = _answer_to_headers_alone(port, path, headers)
    assert answer.startswith(b"HTTP/1.1 401 "), answer
    assert why in answer


def test_a_known_key_is_let_through_to_its_body(
    own_api: tuple[int, InfqProcess], tenants_made: dict[str, Credentials]
) -> None:
    """The same early look-up never refuses a tenant's key: the API waits for the body."""
    port, _ = own_api
    headers = {"X-API-Key": tenants_made["alpha"].api_key}
    assert _answer_to_headers_alone(port, "/v1/jobs", headers) == b""
