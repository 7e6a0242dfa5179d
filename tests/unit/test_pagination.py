"""Cursors (:mod:`infq.pagination`) and the pure parts of a job listing query
(:mod:`infq.db.listing`); the query itself runs on the real stack in
``tests/integration/test_job_listing.py``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.db.listing import MAX_LIMIT, JobQuery, parse_statuses
from infq.errors import InvalidInput
from infq.pagination import Cursor
from schemas.status import JobStatus

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


@given(st.datetimes(timezones=zones), st.text(max_size=200))
def test_a_cursor_reads_back_as_the_same_position(at: datetime, key: str) -> None:
    cursor = Cursor(created_at=at, key=key)
    text = cursor.encode()
    assert Cursor.decode(text) == cursor
    assert text.isascii()
    assert not set(text) & set("+/=&?#% ")  # travels in a query string as it is


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a cursor",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'["2026-11-24T07:00:00", "naive time"]').decode(),
        base64.urlsafe_b64encode(b'["2026-11-24T07:00:00+00:00", 7]').decode(),
        base64.urlsafe_b64encode(b'["2026-11-24T07:00:00+00:00"]').decode(),
    ],
)
def test_anything_else_is_refused_as_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"^cursor: "):
        Cursor.decode(text)


def test_statuses_may_be_repeated_or_comma_separated() -> None:
    assert parse_statuses(["queued,running", " failed ", ""]) == {
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.FAILED,
    }
    assert parse_statuses([]) == frozenset()


def test_an_unknown_status_is_named_with_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_statuses(["queued,done"])
    assert str(caught.value).startswith("status: unknown status 'done'; statuses: queued, running")


@pytest.mark.parametrize("limit", [0, MAX_LIMIT + 1])
def test_a_page_holds_1_to_1000_jobs(limit: int) -> None:
    with pytest.raises(InvalidInput, match=r"^limit: "):
        JobQuery(tenant="t", limit=limit)


def test_times_without_a_zone_are_utc() -> None:
    query = JobQuery(tenant="t", created_after=datetime(2026, 11, 24, 7), created_before=None)
    assert query.created_after == datetime(2026, 11, 24, 7, tzinfo=UTC)
    east = datetime(2026, 11, 24, 7, tzinfo=timezone(timedelta(hours=2)))
    assert JobQuery(tenant="t", created_before=east).created_before == east
