"""A flush's model batches through the three compute stages, one stage at a time.

The engine runs each stage on its own thread (:mod:`workers.engine`), so one flush's
tokenization and another's decoding overlap the forward pass in between:

* :func:`prepare` — plan the model batches (one per lane, task and params, sorted by
  length) and tokenize each (``StagedModel.prepare``), on the CPU;
* :func:`forward` — the device pass of each batch (``StagedModel.forward``);
* :func:`finish` — decode each batch's results (``StagedModel.finish``), on the CPU.

A model with only ``predict`` runs whole in the forward stage. Whatever stage raises,
that batch falls back to :func:`~workers.batching.run_bisecting` over ``predict`` —
the same three stages in a row, split until the failing inputs are isolated — so one
bad input still never fails its neighbours, and a staged model fails exactly the jobs
an unstaged one would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from infq.bus.messages import WorkItem
from infq.catalogue.protocol import Model, StagedModel, TokenCounting
from infq.errors import PermanentFailure
from workers.batching import Outcome, one_each, params_key, plan_batches, run_bisecting
from workers.context import WorkerContext
from workers.measuring import MeasureJournal

log = logging.getLogger("infq.worker")


@dataclass
class PlannedBatch:
    """One forward pass and what each stage left on it."""

    items: list[WorkItem]
    model: Model | None
    tokens: int
    staged: bool = False  # prepare succeeded: forward and finish take the staged path
    prepared: Any = None
    output: Any = None
    outcomes: list[Outcome[WorkItem, Any]] | None = None  # set once the batch is done
    forward_s: float = 0.0

    @property
    def first(self) -> WorkItem:
        """The item whose model, task and params every item of the batch shares."""
        return self.items[0]


@dataclass
class Computation:
    """A flush's model batches; ``outcomes`` once :func:`finish` ran."""

    batches: list[PlannedBatch] = field(default_factory=list)

    @property
    def items(self) -> list[WorkItem]:
        """Every item of the flush."""
        return [i for b in self.batches for i in b.items]

    def outcomes(self) -> list[Outcome[WorkItem, Any]]:
        """Every item's outcome, batch by batch."""
        return [o for b in self.batches for o in b.outcomes or ()]

    def sizes(self) -> dict[str, int]:
        """Each job's model batch size."""
        return {i.job_id: len(b.items) for b in self.batches for i in b.items}

    @property
    def compute_s(self) -> float:
        """Seconds of device passes."""
        return sum(b.forward_s for b in self.batches)


def prepare(
    ctx: WorkerContext, items: Sequence[WorkItem], *, lengths: Mapping[str, int] | None = None
) -> Computation:
    """Plan the model batches and tokenize each one a staged model can.

    ``lengths`` (the tokens measured when the jobs arrived) order and count the batches;
    jobs without one are measured here.
    """
    known = dict(lengths or {})
    lanes = {i.job_id: ctx.lane_of(i) for i in items}
    missing = [i for i in items if i.job_id not in known]
    if missing:
        known.update(measure(ctx, missing))
    # The queue already cut the flush by the lane's policy; this only separates params.
    planned = plan_batches(
        items,
        max_batch_size=max(len(items), 1),
        group_of=lambda i: (lanes[i.job_id], i.task, params_key(i.params)),
        length_of=lambda i: known[i.job_id],
    )
    computation = Computation()
    for members in planned:
        lane = lanes[members[0].job_id]
        model = ctx.models.get(lane) if lane else None
        batch = PlannedBatch(
            items=members, model=model, tokens=sum(known[i.job_id] for i in members)
        )
        computation.batches.append(batch)
        if model is None:
            first = members[0]
            failure = PermanentFailure(
                "model_not_loaded",
                f"this worker does not serve {first.model!r} revision {first.revision!r}",
            )
            batch.outcomes = [Outcome(item=i, error=failure) for i in members]
        elif isinstance(model, StagedModel):
            try:
                batch.prepared = model.prepare([i.text for i in members], batch.first.params)
                batch.staged = True
            except Exception:
                log.debug("prepare failed; the batch runs bisecting", exc_info=True)
    return computation


def forward(computation: Computation) -> None:
    """Run each batch's device pass (or, unstaged, the whole model call)."""
    for batch in computation.batches:
        if batch.outcomes is not None or batch.model is None:
            continue
        started = time.monotonic()
        if batch.staged:
            assert isinstance(batch.model, StagedModel)
            try:
                batch.output = batch.model.forward(batch.prepared)
            except Exception:
                log.debug("forward failed; the batch runs bisecting", exc_info=True)
                batch.staged = False
        if not batch.staged:
            batch.outcomes = run_bisecting(batch.items, predictor(batch.model, batch.first))
        batch.forward_s = time.monotonic() - started


def finish(computation: Computation) -> list[Outcome[WorkItem, Any]]:
    """Decode each staged batch's results; returns every item's outcome."""
    for batch in computation.batches:
        if batch.outcomes is not None or batch.model is None:
            continue
        assert isinstance(batch.model, StagedModel)
        try:
            results = one_each(batch.model.finish(batch.prepared, batch.output), batch.items)
            batch.outcomes = [
                Outcome(item=i, result=r) for i, r in zip(batch.items, results, strict=True)
            ]
        except Exception:
            log.debug("finish failed; the batch runs bisecting", exc_info=True)
            batch.outcomes = run_bisecting(batch.items, predictor(batch.model, batch.first))
        batch.prepared = batch.output = None  # tensors go as soon as they are decoded
    return computation.outcomes()


def measure(
    ctx: WorkerContext, items: Sequence[WorkItem], journal: MeasureJournal | None = None
) -> dict[str, int]:
    """Each item's length in its model's tokens where the model counts them, else an
    estimate from characters (about 4 per token). The model's tokenizer runs with the
    jobs named in ``journal`` (a crash there is charged to them), an item that already
    cost a worker alone (:mod:`workers.measuring`)."""
    by_lane: dict[str | None, list[WorkItem]] = {}
    for item in items:
        by_lane.setdefault(ctx.lane_of(item), []).append(item)
    lengths: dict[str, int] = {}
    for lane, members in by_lane.items():
        model = ctx.models.get(lane) if lane else None
        if isinstance(model, TokenCounting):
            suspects = [[i] for i in members if i.attempts > 0]
            rest = [i for i in members if i.attempts == 0]
            for group in [*suspects, rest] if rest else suspects:
                lengths.update(_counted(model, group, journal))
        else:
            lengths.update((i.job_id, _estimate(i)) for i in members)
    return lengths


def _estimate(item: WorkItem) -> int:
    return len(item.text) // 4 + 1


def _counted(
    model: TokenCounting, items: Sequence[WorkItem], journal: MeasureJournal | None
) -> dict[str, int]:
    counted: list[int] | None = None
    try:
        with journal.measuring([i.job_id for i in items]) if journal else nullcontext():
            counted = model.token_lengths([i.text for i in items])
    except Exception:
        log.debug("token_lengths failed; estimating from characters", exc_info=True)
    if counted is None or len(counted) != len(items):
        counted = [_estimate(i) for i in items]
    return {i.job_id: n for i, n in zip(items, counted, strict=True)}


def predictor(model: Model, first: WorkItem) -> Callable[[Sequence[WorkItem]], list[Any]]:
    """A batch call for items sharing ``first``'s model, task and params."""

    def predict(batch: Sequence[WorkItem]) -> list[Any]:
        return model.predict(first.task, [i.text for i in batch], first.params)

    return predict
