"""Batch vocabulary, pure: completion windows, request counts, status from a row,
upload lines with custom ids and input order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infq.db.batches import status_of
from infq.db.models import Batch
from producers.jsonl import BadLine, requests_from_lines
from schemas.batches import BatchStatus, RequestCounts, parse_window


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90m", 5400), ("3600s", 3600), ("3600", 3600), ("2d", 172800), ("1M", 60)],
)
def test_windows_read_as_seconds(text: str, seconds: int) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["forever", "", "h", "-5m", "30s", "8d", "1.5h"])
def test_bad_windows_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="completion window"):
        parse_window(text)


def test_request_counts_fold_rejections_into_failed_and_count_what_arrived() -> None:
    counts = {"succeeded": 5, "failed": 1, "rejected": 2, "cancelled": 1, "expired": 3}
    assert RequestCounts.of(counts, total=20) == RequestCounts(
        total=20, succeeded=5, failed=3, cancelled=1, expired=3
    )
    # Unsealed: the total is what was recorded so far
    assert RequestCounts.of({"queued": 4}, total=None).total == 4


NOW = datetime(2026, 11, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, BatchStatus.VALIDATING),
        ({"jobs_seen": 2}, BatchStatus.IN_PROGRESS),
        ({"jobs_seen": 2, "jobs_final": 2}, BatchStatus.IN_PROGRESS),  # unsealed
        ({"jobs_seen": 2, "jobs_final": 2, "total_jobs": 2}, BatchStatus.FINALIZING),
        ({"jobs_seen": 2, "cancelled_at": NOW}, BatchStatus.CANCELLING),
        ({"finished_at": NOW}, BatchStatus.COMPLETED),
        ({"finished_at": NOW, "cancelled_at": NOW}, BatchStatus.CANCELLED),
        ({"finished_at": NOW, "expired_at": NOW}, BatchStatus.EXPIRED),
        ({"jobs_seen": 3, "expired_at": NOW}, BatchStatus.IN_PROGRESS),
    ],
)
def test_a_batch_status_follows_its_row(fields: dict[str, object], status: BatchStatus) -> None:
    row = Batch(tenant_id="t", batch_id="b", jobs_seen=0, jobs_final=0, total_jobs=None,
                finished_at=None, cancelled_at=None, expired_at=None)  # fmt: skip
    for name, value in fields.items():
        setattr(row, name, value)
    assert status_of(row) is status


def test_upload_lines_keep_their_order_and_custom_ids() -> None:
    lines = ['{"custom_id": "a", "text": "x"}', "", '"plain"', '{"custom_id": "c", "text": "z"}']
    requests = requests_from_lines(lines, model="echo", batch_id="b")
    assert [(r.batch_index, r.custom_id, r.input.text) for r in requests] == [
        (0, "a", "x"), (1, None, "plain"), (2, "c", "z"),
    ]  # fmt: skip


def test_a_repeated_custom_id_names_both_lines() -> None:
    with pytest.raises(BadLine, match="line 3: custom_id 'a' repeats line 1"):
        requests_from_lines(['{"custom_id": "a", "text": "x"}', '"y"', '{"custom_id": "a",'
                             ' "text": "z"}'], model="echo", batch_id="b")  # fmt: skip
