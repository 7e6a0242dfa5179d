"""``infq models check``'s measurement (:mod:`workers.precision`) on a tiny classifier."""

from __future__ import annotations

from pathlib import Path

from infq.catalogue.catalogue import Lane, check_params
from infq.catalogue.entries import DType, Entry, Task
from tests.tiny_models import build_classifier
from workers.precision import agreement, check

TEXTS = [f"sentence number {n} with some words" * (1 + n % 3) for n in range(40)]


def test_a_precision_check_reports_throughput_and_label_agreement(tmp_path: Path) -> None:
    folder = build_classifier(tmp_path / "c")
    entry = Entry.model_validate({"name": "tiny", "task": "classify", "path": str(folder)})
    lane = Lane(entry, entry.revisions[0])
    report = check(lane, DType.INT8, TEXTS, params=check_params(entry, {}), batch_size=16,
                   rounds=1)  # fmt: skip
    assert report.agreement == "same label"
    assert report.texts == 40
    assert 0.5 <= report.agreement_mean <= 1.0
    assert report.reference_jobs_per_s > 0
    assert report.candidate_jobs_per_s > 0
    # The reference against itself agrees everywhere
    same = check(lane, DType.FLOAT32, TEXTS[:8], params=check_params(entry, {}), rounds=1)
    assert (same.agreement_mean, same.agreement_min) == (1.0, 1.0)


def test_embeddings_are_compared_by_cosine() -> None:
    kind, scores = agreement(Task.EMBED, [[1.0, 0.0], [0.0, 2.0]], [[2.0, 0.0], [1.0, 0.0]])
    assert kind == "cosine"
    assert scores == [1.0, 0.0]
