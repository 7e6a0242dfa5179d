"""Retention's pure parts: which result folders nothing can name any more, and the
local store's listing and deleting under a prefix."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from infq.dispatch.retention import folders_before, object_cutoff
from infq.results.files import FileResultStore
from infq.results.layout import batch_key, day_of

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_the_cutoff_counts_back_from_the_oldest_kept_job_or_from_now() -> None:
    # cache entries live 30 days, and a day more for clocks
    assert object_cutoff(now=NOW, oldest_finished=None, cache_days=30) == date(2026, 11, 3)
    old = NOW - timedelta(days=60)
    assert object_cutoff(now=NOW, oldest_finished=old, cache_days=30) == date(2026, 9, 4)
    # a job "finished" in the future (a skewed clock) does not move it forward
    later = NOW + timedelta(days=5)
    assert object_cutoff(now=NOW, oldest_finished=later, cache_days=30) == date(2026, 11, 3)


def test_only_day_folders_are_days() -> None:
    assert day_of("results/2026/10/01/") == date(2026, 10, 1)
    assert day_of("results/2026/10/") is None
    assert day_of("results/2026/02/30/") is None
    assert day_of("results/2026/10/xx/") is None


def test_folders_before_the_cutoff_are_found_and_emptied(tmp_path: Path) -> None:
    store = FileResultStore(tmp_path)
    days = [NOW - timedelta(days=n) for n in (400, 45, 31, 30, 0)]
    for at in days:
        for _ in range(3):
            store.put(batch_key(worker_batch_id=uuid.uuid4(), at=at, tenant="t"), b"{}\n")
    store.put("results/not-a-year/x.jsonl", b"{}\n")  # foreign: never touched

    found = folders_before(store, date(2026, 11, 4))

    assert found == ["results/2025/10/30/", "results/2026/10/20/", "results/2026/11/03/"]
    assert store.delete_under(found[0], limit=2) == 2
    assert store.delete_under(found[0], limit=2) == 1
    assert store.delete_under(found[0], limit=2) == 0
    assert folders_before(store, date(2026, 11, 4)) == found[1:]
    assert (tmp_path / "results/not-a-year/x.jsonl").exists()
