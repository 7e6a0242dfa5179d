"""Webhook signatures (:mod:`infq.webhooks.signing`): round trips, tampering, replays, rotation."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.errors import InfqError
from infq.webhooks import signing
from infq.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidSignature,
    sign,
    signed_headers,
    verify,
)

NOW_S = 1_700_000_000
BODY = b'{"job_id": "j1", "status": "succeeded"}'
secrets = st.text(st.characters(codec="utf-8"), max_size=64)
bodies = st.binary(max_size=512)
timestamps = st.integers(min_value=0, max_value=4_000_000_000)


def check(
    *,
    secret: str = "s3cret",
    timestamp: str = str(NOW_S),
    signature: str | None = None,
    body: bytes = BODY,
    now_s: float = NOW_S,
) -> None:
    if signature is None:
        signature = sign("s3cret", timestamp_s=NOW_S, body=BODY)
    verify(secret, timestamp_header=timestamp, signature_header=signature, body=body, now_s=now_s)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()

    assert sign("s3cret", timestamp_s=NOW_S, body=BODY) == "v1=" + expected


def test_signed_headers_carry_everything_a_receiver_needs() -> None:
    headers = signed_headers("s3cret", body=BODY, timestamp_s=NOW_S, delivery_id="d1", event="job")

    assert headers == {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: "1700000000",
        SIGNATURE_HEADER: sign("s3cret", timestamp_s=NOW_S, body=BODY),
        DELIVERY_HEADER: "d1",
        EVENT_HEADER: "job",
    }


@given(secret=secrets, body=bodies, timestamp_s=timestamps)
def test_what_is_signed_verifies(secret: str, body: bytes, timestamp_s: int) -> None:
    headers = signed_headers(secret, body=body, timestamp_s=timestamp_s, delivery_id="d", event="e")

    verify(
        secret,
        timestamp_header=headers[TIMESTAMP_HEADER],
        signature_header=headers[SIGNATURE_HEADER],
        body=body,
        now_s=timestamp_s + 299.5,
    )


@given(body=bodies.filter(len), data=st.data())
def test_any_changed_body_byte_fails(body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    signature = sign("s3cret", timestamp_s=NOW_S, body=body)

    with pytest.raises(InvalidSignature, match="no signature matches"):
        check(signature=signature, body=tampered)


@given(body=bodies, data=st.data())
def test_any_changed_timestamp_byte_fails(body: bytes, data: st.DataObject) -> None:
    timestamp = str(NOW_S)
    index = data.draw(st.integers(min_value=0, max_value=len(timestamp) - 1))
    replacement = data.draw(st.sampled_from("0123456789").filter(lambda c: c != timestamp[index]))
    tampered = timestamp[:index] + replacement + timestamp[index + 1 :]
    signature = sign("s3cret", timestamp_s=NOW_S, body=body)

    # The clock follows the tampered timestamp, so only the signature can catch it.
    with pytest.raises(InvalidSignature, match="no signature matches"):
        check(timestamp=tampered, signature=signature, body=body, now_s=int(tampered))


@pytest.mark.parametrize(
    "timestamp", ["01700000000", "+1700000000", " 1700000000", "1_700_000_000", "1700000000.0"]
)
def test_other_spellings_of_the_timestamp_fail(timestamp: str) -> None:
    # int() reads all of these as the signed value; none is what was signed.
    with pytest.raises(InvalidSignature):
        check(timestamp=timestamp)


@pytest.mark.parametrize("timestamp", ["", "abc", "-5", "\uff11\uff17\uff10\uff10", "9" * 40])
def test_malformed_timestamp_is_refused(timestamp: str) -> None:
    with pytest.raises(InvalidSignature, match="malformed timestamp") as caught:
        check(timestamp=timestamp)

    assert "malformed timestamp" in caught.value.reason


@pytest.mark.parametrize(("offset_s", "word"), [(-301, "old"), (301, "in the future")])
def test_timestamps_outside_tolerance_are_refused(offset_s: int, word: str) -> None:
    # A correctly signed but stale request: what a replay looks like.
    with pytest.raises(InvalidSignature, match=word) as caught:
        check(now_s=NOW_S - offset_s)

    assert "tolerance" in caught.value.reason


@pytest.mark.parametrize("offset_s", [-300, 0, 300])
def test_timestamps_at_the_tolerance_edge_pass(offset_s: int) -> None:
    check(now_s=NOW_S + offset_s)


def test_tolerance_is_configurable() -> None:
    with pytest.raises(InvalidSignature):
        verify(
            "s3cret",
            timestamp_header=str(NOW_S),
            signature_header=sign("s3cret", timestamp_s=NOW_S, body=BODY),
            body=BODY,
            now_s=NOW_S + 11,
            tolerance_s=10,
        )


def test_wrong_secret_fails() -> None:
    with pytest.raises(InvalidSignature, match="no signature matches"):
        check(secret="other")


def test_any_of_several_signatures_may_match_during_key_rotation() -> None:
    old = sign("old", timestamp_s=NOW_S, body=BODY)
    new = sign("new", timestamp_s=NOW_S, body=BODY)

    for secret in ("old", "new"):
        check(secret=secret, signature=f"{old}, {new}")
    with pytest.raises(InvalidSignature):
        check(secret="third", signature=f"{old},{new}")


@pytest.mark.parametrize("signature", ["", "garbage", "v0=abc", "sha256=abc"])
def test_header_without_a_v1_signature_fails(signature: str) -> None:
    with pytest.raises(InvalidSignature, match="no v1 signature"):
        check(signature=signature)


def test_unknown_versions_are_ignored_beside_a_matching_v1() -> None:
    check(signature="v2=ffff, " + sign("s3cret", timestamp_s=NOW_S, body=BODY))


def test_non_ascii_signature_fails_cleanly() -> None:
    with pytest.raises(InvalidSignature):
        check(signature="v1=é")


def test_invalid_signature_is_an_infq_error() -> None:
    assert issubclass(InvalidSignature, InfqError)


def _receiver_example() -> Callable[[str, dict[str, str], bytes], bool]:
    match = re.search(r"```python\n(.*?)```", signing.__doc__ or "", re.DOTALL)
    assert match is not None, "signing's docstring lost its receiver example"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "receiver-example", "exec"), namespace)
    return cast(Callable[[str, dict[str, str], bytes], bool], namespace["is_valid"])


def test_receiver_example_in_the_docstring_accepts_and_refuses() -> None:
    import time

    is_valid = _receiver_example()
    now_s = int(time.time())
    headers = signed_headers("s3cret", body=BODY, timestamp_s=now_s, delivery_id="d", event="e")
    stale = signed_headers("s3cret", body=BODY, timestamp_s=now_s - 600, delivery_id="d", event="e")

    assert is_valid("s3cret", headers, BODY)
    assert not is_valid("s3cret", headers, BODY + b" ")
    assert not is_valid("other", headers, BODY)
    assert not is_valid("s3cret", stale, BODY)
    assert not is_valid("s3cret", {**headers, TIMESTAMP_HEADER: "\uff11\uff17"}, BODY)
