"""One webhook POST: to an address that was checked, within one deadline, body unread.

Three holes of a plain ``client.post(url)``, each one a receiver could use:

* **DNS rebinding.** The URL's host was resolved and every address checked
  (:func:`infq.webhooks.urls.check_destination`); resolving it again to connect lets a
  short TTL swap in a private address. So the request goes to a checked address, with
  the URL's ``Host`` header and, for https, its name as the TLS server name (so the
  certificate is still verified against the name, not the address).
* **An endless response.** Only the status line matters; the body is never read, and
  the connection is closed after the headers.
* **A receiver that drips bytes.** httpx's timeouts bound each read, not the attempt:
  a byte every few seconds kept a notifier thread for hours. A watchdog shuts the
  attempt's socket down at the deadline (the socket comes from httpcore's ``trace``
  extension when it connects), and the attempt ends as a timeout, which is retried.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx


class AttemptDeadline(httpx.TimeoutException):
    """The attempt ran past its overall deadline (a retried error, like any timeout)."""


def post_checked(
    client: httpx.Client,
    url: str,
    *,
    addresses: Sequence[str],
    content: bytes,
    headers: Mapping[str, str],
    deadline_s: float,
) -> int:
    """POST ``content`` to ``url`` at the first of ``addresses`` that accepts a
    connection (the host's own resolution when there are none: an allowed host);
    returns the status code."""
    target = httpx.URL(url)
    last: httpx.HTTPError | None = None
    ends = time.monotonic() + deadline_s
    targets: list[str | None] = [*addresses] or [None]
    for address in targets:
        left_s = ends - time.monotonic()
        if left_s <= 0:
            raise AttemptDeadline(f"no address answered within the attempt's {deadline_s:g} s")
        try:
            return _post_once(client, target, address, content, headers, left_s)
        except httpx.ConnectError as e:
            last = e  # the next checked address, as a resolver's client would
    assert last is not None
    raise last


def _post_once(
    client: httpx.Client,
    url: httpx.URL,
    address: str | None,
    content: bytes,
    headers: Mapping[str, str],
    deadline_s: float,
) -> int:
    sent = dict(headers)
    extensions: dict[str, Any] = {}
    if address is not None:
        sent["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
        url = url.copy_with(host=address)
    watchdog = _Watchdog(deadline_s)
    extensions["trace"] = watchdog.trace
    try:
        with client.stream(
            "POST", url, content=content, headers=sent, extensions=extensions
        ) as response:
            return response.status_code
    except httpx.HTTPError as e:
        if watchdog.fired:
            raise AttemptDeadline(f"no answer within the attempt's {deadline_s:g} s") from e
        raise
    finally:
        watchdog.cancel()


class _Watchdog:
    """Shuts the attempt's socket down when its deadline passes."""

    def __init__(self, deadline_s: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.fired = False
        self._timer = threading.Timer(deadline_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback: remember the socket it connected."""
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                late = self.fired
            if late:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        """The attempt is over: the deadline no longer matters."""
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)
