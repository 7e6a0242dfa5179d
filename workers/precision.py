"""What a precision option trades: throughput and agreement against float32.

``infq models check M --dtype int8`` loads the lane twice (float32 reference and the
candidate precision), runs both over the same texts in the same length-sorted batches,
and compares: cosine for embeddings, label agreement for classify, identical text for
greedy generation, equal results otherwise. Timings alternate reference and candidate
rounds and keep each one's best, because a shared machine's noise only ever slows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infq.catalogue.catalogue import Lane
from infq.catalogue.entries import DType, Task
from infq.catalogue.protocol import Model
from workers.loading import load_lane


@dataclass(frozen=True)
class PrecisionReport:
    """One candidate precision against the float32 reference."""

    lane: str
    dtype: str
    device: str
    texts: int
    batch_size: int
    reference_jobs_per_s: float
    candidate_jobs_per_s: float
    agreement: str  # what was compared
    agreement_mean: float
    agreement_min: float

    @property
    def speedup(self) -> float:
        """Candidate throughput over the reference's."""
        return self.candidate_jobs_per_s / self.reference_jobs_per_s


def with_dtype(lane: Lane, dtype: DType) -> Lane:
    """The same lane in another precision."""
    return Lane(lane.entry, lane.revision.model_copy(update={"dtype": dtype}))


def _run(model: Model, task: str, batches: list[list[str]], params: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for batch in batches:
        out += model.predict(task, batch, params)
    return out


def _timed(model: Model, task: str, batches: list[list[str]], params: dict[str, Any]) -> float:
    started = time.perf_counter()
    _run(model, task, batches, params)
    return time.perf_counter() - started


def agreement(
    task: Task, reference: Sequence[Any], candidate: Sequence[Any]
) -> tuple[str, list[float]]:
    """Per-input agreement scores in [0, 1] (cosine may be slightly below 0)."""
    if task is Task.EMBED:
        scores = []
        for a, b in zip(reference, candidate, strict=True):
            x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            norms = float(np.linalg.norm(x) * np.linalg.norm(y))
            scores.append(float(x @ y) / max(norms, 1e-12))
        return "cosine", scores
    if task is Task.CLASSIFY:
        return "same label", [
            float(a["label"] == b["label"]) for a, b in zip(reference, candidate, strict=True)
        ]
    if task is Task.GENERATE:
        return "same text", [
            float(a["text"] == b["text"]) for a, b in zip(reference, candidate, strict=True)
        ]
    return "equal result", [float(a == b) for a, b in zip(reference, candidate, strict=True)]


def check(
    lane: Lane,
    dtype: DType,
    texts: Sequence[str],
    *,
    params: dict[str, Any],
    device: str = "cpu",
    batch_size: int = 64,
    rounds: int = 3,
) -> PrecisionReport:
    """Measure ``dtype`` against float32 for one lane over ``texts``."""
    ordered = sorted(texts, key=len)
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    reference = load_lane(with_dtype(lane, DType.FLOAT32), device=device)
    candidate = load_lane(with_dtype(lane, dtype), device=device)
    task = lane.entry.task.value
    # Warm both (allocators, kernels), then alternate timed rounds.
    _run(reference, task, batches[:1], params)
    _run(candidate, task, batches[:1], params)
    best_ref = best_cand = float("inf")
    for _ in range(rounds):
        best_ref = min(best_ref, _timed(reference, task, batches, params))
        best_cand = min(best_cand, _timed(candidate, task, batches, params))
    kind, scores = agreement(
        lane.entry.task,
        _run(reference, task, batches, params),
        _run(candidate, task, batches, params),
    )
    return PrecisionReport(
        lane=lane.name,
        dtype=dtype.value,
        device=device,
        texts=len(ordered),
        batch_size=batch_size,
        reference_jobs_per_s=len(ordered) / best_ref,
        candidate_jobs_per_s=len(ordered) / best_cand,
        agreement=kind,
        agreement_mean=float(np.mean(scores)),
        agreement_min=float(np.min(scores)),
    )
