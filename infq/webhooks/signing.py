"""Webhook signatures: how a receiver knows a callback came from infq and is fresh.

Every callback carries ``X-Infq-Timestamp`` (Unix seconds) and ``X-Infq-Signature``
(``v1=<hex HMAC-SHA256>``) computed with the tenant's webhook secret over
``f"{timestamp}." + body``. Signing the timestamp with the body lets a receiver refuse
replays: an old request cannot be re-sent with a new timestamp without the secret. The
signature header may hold several comma-separated values so that a secret can be rotated
without a window in which receivers reject callbacks. ``X-Infq-Delivery`` is stable
across retries of one delivery, so receivers can drop duplicates.

A receiver needs only the standard library (look headers up case-insensitively in a
real framework):

```python
import hashlib
import hmac
import time


def is_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["X-Infq-Timestamp"]
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > 300:
        return False  # too old (a replay?) or too far in the future
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    expected = ("v1=" + mac.hexdigest()).encode()
    candidates = headers["X-Infq-Signature"].split(",")
    return any(hmac.compare_digest(expected, c.strip().encode()) for c in candidates)
```

Pure: no I/O and no clock; callers pass the time in.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from infq.errors import InfqError

TIMESTAMP_HEADER = "X-Infq-Timestamp"
SIGNATURE_HEADER = "X-Infq-Signature"
DELIVERY_HEADER = "X-Infq-Delivery"
EVENT_HEADER = "X-Infq-Event"
SIGNATURE_VERSION = "v1"

_PREFIX = f"{SIGNATURE_VERSION}="
# Digits only: int() would also accept "+1", " 1 " and "1_0", which sign() never writes.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


class InvalidSignature(InfqError):
    """A callback's signature headers do not prove it is authentic and fresh.

    ``reason`` says which check failed, for the receiver's logs.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid webhook signature: {reason}")
        self.reason = reason


def _digest(secret: str, signed_timestamp: str, body: bytes) -> str:
    message = signed_timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, *, timestamp_s: int, body: bytes) -> str:
    """The ``X-Infq-Signature`` value for ``body`` sent at ``timestamp_s``."""
    return _PREFIX + _digest(secret, str(timestamp_s), body)


def signed_headers(
    secret: str, *, body: bytes, timestamp_s: int, delivery_id: str, event: str
) -> dict[str, str]:
    """Every header a callback request carries besides the HTTP client's own."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: sign(secret, timestamp_s=timestamp_s, body=body),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }


def verify(
    secret: str,
    *,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    now_s: float,
    tolerance_s: float = 300,
) -> None:
    """Raise :class:`InvalidSignature` unless the headers sign ``body`` recently enough.

    The timestamp must be within ``tolerance_s`` of ``now_s`` in either direction (clock
    skew), and any one ``v1=`` value of the signature header must match; values of
    other versions are ignored.
    """
    if _TIMESTAMP.fullmatch(timestamp_header) is None:
        raise InvalidSignature(
            f"malformed timestamp {timestamp_header[:32]!r}; expected Unix seconds as digits"
        )
    age_s = now_s - int(timestamp_header)
    if abs(age_s) > tolerance_s:
        when = "old" if age_s > 0 else "in the future"
        raise InvalidSignature(
            f"timestamp {timestamp_header} is {abs(age_s):.0f}s {when}, outside the "
            f"{tolerance_s:g}s tolerance (a replayed request, or a clock that is off)"
        )
    # Hash the header exactly as received, so that whatever was sent is what was signed.
    expected = (_PREFIX + _digest(secret, timestamp_header, body)).encode("ascii")
    candidates = [c.strip() for c in signature_header.split(",")]
    versioned = [c for c in candidates if c.startswith(_PREFIX)]
    if not versioned:
        raise InvalidSignature(f"no {SIGNATURE_VERSION} signature in the {SIGNATURE_HEADER} header")
    # Check every candidate (no early exit), each in constant time.
    matches = [hmac.compare_digest(expected, c.encode("utf-8", "replace")) for c in versioned]
    if not any(matches):
        raise InvalidSignature("no signature matches the body and timestamp with this secret")
