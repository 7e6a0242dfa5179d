"""Hostile webhook receivers against one real delivery attempt's transport, on loopback:
a name that rebinds to a private address after the check, an endless response body, a
receiver that drips its status line, and a name that does not resolve."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from infq.webhooks.policy import Outcome, classify
from infq.webhooks.transport import AttemptDeadline, post_checked
from infq.webhooks.urls import RefusedCallbackUrl, UnresolvedHost, check_destination
from tests.integration.harness import Receiver

CLIENT_TIMEOUT_S = 10.0  # each read may take this long: far past the attempt's deadline


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=CLIENT_TIMEOUT_S, follow_redirects=False) as c:
        yield c


def _raw_server(answer: Callable[[socket.socket], None]) -> tuple[int, threading.Event]:
    """A one-connection TCP server that reads the request head, then runs ``answer``."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            with contextlib.suppress(OSError):  # the client hung up, as it should
                answer(conn)
        server.close()
        stop.set()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], stop


def test_a_name_that_rebinds_after_the_check_is_never_connected_to_again(
    client: httpx.Client,
) -> None:
    # Given a name whose first answer is an allowed address and every later one another
    good = Receiver("s")
    private = socket.create_server(("127.0.0.2", good.port))  # where a second lookup leads
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if len(asked) == 1 else ["127.0.0.2"]

    url = f"http://hooks.example:{good.port}/hook"
    # When the attempt checks the name, then posts
    addresses = check_destination(url, allow=["127.0.0.1/32"], resolve=rebinding)
    status = post_checked(client, url, addresses=addresses, content=b"{}",
                          headers={"Content-Type": "application/json"}, deadline_s=5)  # fmt: skip
    # Then it connected to the address it checked, naming the host, and asked DNS once
    assert status == 200
    assert asked == ["hooks.example"]
    assert len(good.received) == 1
    assert good.received[0]["headers"]["Host"] == f"hooks.example:{good.port}"
    assert select.select([private], [], [], 0.3)[0] == [], "connected to the rebound address"
    # And the later answer would have been refused, had it been asked
    with pytest.raises(RefusedCallbackUrl, match=r"private|loopback"):
        check_destination(url, allow=["127.0.0.1/32"], resolve=rebinding)
    good.close()
    private.close()


def test_an_endless_response_body_is_not_read(client: httpx.Client) -> None:
    def endless(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100_000):  # bounded: ~6 GiB if the client read it all
            conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")

    port, _ = _raw_server(endless)
    started = time.monotonic()
    status = post_checked(client, f"http://127.0.0.1:{port}/", addresses=["127.0.0.1"],
                          content=b"{}", headers={}, deadline_s=5)  # fmt: skip
    assert status == 200
    assert time.monotonic() - started < 3


def test_a_receiver_that_drips_is_cut_off_at_the_attempts_deadline(client: httpx.Client) -> None:
    def drip(conn: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:  # 40 s at 5 bytes/s
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    port, _ = _raw_server(drip)
    started = time.monotonic()
    with pytest.raises(AttemptDeadline) as caught:
        post_checked(client, f"http://127.0.0.1:{port}/", addresses=["127.0.0.1"],
                     content=b"{}", headers={}, deadline_s=1.5)  # fmt: skip
    took = time.monotonic() - started
    assert 1.4 < took < 4, took
    # A timeout is retried
    assert classify(status_code=None, error=str(caught.value)) is Outcome.RETRY


def test_a_name_that_does_not_resolve_is_a_retried_error_not_a_refusal() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(UnresolvedHost) as caught:
        check_destination("https://hooks.example/x", allow=[], resolve=failing)
    assert isinstance(caught.value, RefusedCallbackUrl)  # still refused at submission
    assert "cannot resolve host 'hooks.example'" in caught.value.reason
