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
