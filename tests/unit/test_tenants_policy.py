"""Tenant names and the max-queued rule (:mod:`infq.tenants.policy`), and the dispatcher's
use of it on a round of records (:mod:`infq.tenants.max_queued`)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.dispatch.refusals import enforce_max_queued
from infq.dispatch.triage import Accepted, Limits, Record, triage_one
from infq.errors import InvalidInput, OverLimit
from infq.tenants.max_queued import QUEUE_FULL
from infq.tenants.policy import (
    QUEUE_FULL_RETRY_AFTER_S,
    TENANT_NAME_PATTERN,
    TenantLimits,
    check_queue_room,
    check_tenant_name,
)


@pytest.mark.parametrize("name", ["default", "acme", "a", "team-7.prod_eu", "0x", "a" * 64])
def test_plain_names_are_accepted(name: str) -> None:
    assert check_tenant_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../x", "'/' not allowed (use lowercase letters, digits, '.', '_' and '-')"),
        ("A B", "' ', 'A', 'B' not allowed"),
        ("", "it is empty (use 1 to 64 lowercase letters"),
        ("..", "it must start with a lowercase letter or digit"),
        ("-rf", "it must start with a lowercase letter or digit"),
        ("a" * 65, "65 characters; at most 64"),
        ("acme\n", "'\\n' not allowed"),
        ("café", "'é' not allowed"),
    ],
)
def test_other_names_are_refused_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_tenant_name(name)
    message = str(refused.value)
    assert message.startswith(f"invalid tenant name {name!r}: {why}")
    assert "\n" not in message.replace("\\n", "")


@given(st.from_regex(TENANT_NAME_PATTERN, fullmatch=True))
def test_every_name_the_pattern_allows_is_accepted(name: str) -> None:
    assert check_tenant_name(name) == name


@given(st.text(max_size=70))
def test_accepted_names_cannot_leave_their_s3_prefix(name: str) -> None:
    try:
        check_tenant_name(name)
    except InvalidInput:
        return
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name)
    assert "/" not in name
    assert name not in (".", "..")
    assert len(name) <= 64


def test_the_queue_rule_is_all_or_nothing() -> None:
    check_queue_room("t", queued=7, jobs=3, max_queued_jobs=10)
    check_queue_room("t", queued=10**6, jobs=10**6, max_queued_jobs=None)
    with pytest.raises(OverLimit) as full:
        check_queue_room("t", queued=8, jobs=3, max_queued_jobs=10)
    assert (full.value.code, full.value.tenant) == ("queue_full", "t")
    assert full.value.retry_after_s == QUEUE_FULL_RETRY_AFTER_S
    assert str(full.value) == (
        "tenant 't' has 8 jobs queued and may have 10; 3 more would exceed it: "
        "retry when some have started"
    )
    with pytest.raises(OverLimit, match="split the submission, or raise the limit"):
        check_queue_room("t", queued=0, jobs=11, max_queued_jobs=10)
    with pytest.raises(OverLimit):
        check_queue_room("t", queued=0, jobs=1, max_queued_jobs=0)


def test_limits_are_checked_when_made() -> None:
    with pytest.raises(InvalidInput, match="0 or more"):
        TenantLimits(max_queued_jobs=-1)
    with pytest.raises(InvalidInput, match="above 0"):
        TenantLimits(rate_per_s=0.0)


# --- the dispatcher's rule over a round ---

CATALOGUE = Catalogue(builtin_entries())


def _accepted(tenant: str | None, offset: int, **fields: Any) -> Accepted:
    body = {"job_id": str(uuid.uuid4()), "model": "echo", "input": {"text": "hi"}, **fields}
    if tenant is not None:
        body["tenant"] = tenant
    record = Record("infq.jobs", 0, offset, 1_700_000_000_000, orjson.dumps(body))
    outcome = triage_one(
        record, catalogue=CATALOGUE, limits=Limits(max_record_bytes=1 << 20, max_input_bytes=64)
    )
    assert isinstance(outcome, Accepted)
    return outcome


def test_jobs_take_their_tenants_room_in_poll_order() -> None:
    round_ = [_accepted("full", 0), _accepted("some", 1, batch_id="b1"), _accepted(None, 2),
              _accepted("some", 3), _accepted("some", 4), _accepted("free", 5)]  # fmt: skip
    kept, refused = enforce_max_queued(round_, room={"full": 0, "some": 1}, exempt=set())
    assert kept == [round_[1], round_[2], round_[5]]
    assert [r.record.offset for r in refused] == [0, 3, 4]
    first = refused[0]
    assert (first.code, first.job_id, first.tenant, first.model) == (
        QUEUE_FULL, round_[0].job_id, "full", "echo")  # fmt: skip
    assert first.has_row  # recorded as a rejected job, not only dead-lettered
    assert refused[1].tenant == "some"
    assert "new job id" in first.message


def test_jobs_that_never_wait_take_no_room() -> None:
    hit, redelivered, new = _accepted("t", 0), _accepted("t", 1), _accepted("t", 2)
    kept, refused = enforce_max_queued(
        [hit, redelivered, new], room={"t": 0}, exempt={hit.job_id, redelivered.job_id}
    )
    assert kept == [hit, redelivered]
    assert [r.job_id for r in refused] == [new.job_id]
