"""The compute stages (prepare → forward → finish) with fake models, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from infq.bus.messages import WorkItem
from infq.errors import PermanentFailure
from workers import stages
from workers.context import WorkerContext

LANE = "m@1"


@dataclass
class FakeContext:
    """What the stages read from a worker context."""

    models: dict[str, Any]
    lanes: dict[str, Any] = field(default_factory=lambda: {LANE: None})

    def lane_of(self, item: WorkItem) -> str | None:
        return LANE if item.model == "m" else None


class Staged:
    """Upper-cases; ``bad`` inputs fail the stage named by ``fail_in``."""

    def __init__(self, fail_in: str = "") -> None:
        self.fail_in = fail_in
        self.calls: list[str] = []

    def _check(self, stage: str, texts: Sequence[str]) -> None:
        self.calls.append(stage)
        if stage == self.fail_in and "bad" in texts:
            raise ValueError(f"{stage} broke")

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(t) for t in texts]

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> list[str]:
        self._check("prepare", texts)
        return list(texts)

    def forward(self, prepared: list[str]) -> list[str]:
        self._check("forward", prepared)
        return [t.upper() for t in prepared]

    def finish(self, prepared: list[str], output: list[str]) -> list[Any]:
        self._check("finish", prepared)
        return [{"text": t} for t in output]

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        prepared = self.prepare(texts, params)
        return self.finish(prepared, self.forward(prepared))


def items(*texts: str, model: str = "m", params: dict[str, Any] | None = None) -> list[WorkItem]:
    return [
        WorkItem(job_id=f"j{n}", model=model, revision="1", task="embed", text=t,
                 params=params or {})
        for n, t in enumerate(texts)
    ]  # fmt: skip


def run(model: Any, work: list[WorkItem]) -> dict[str, Any]:
    ctx = cast(WorkerContext, FakeContext(models={LANE: model}))
    computation = stages.prepare(ctx, work)
    stages.forward(computation)
    outcomes = stages.finish(computation)
    assert sorted(o.item.job_id for o in outcomes) == sorted(i.job_id for i in work)
    return {o.item.text: o.result if o.error is None else o.error.code for o in outcomes}


def test_each_stage_runs_once_per_batch_on_the_staged_path() -> None:
    model = Staged()
    assert run(model, items("a", "bb", "c")) == {
        "a": {"text": "A"},
        "bb": {"text": "BB"},
        "c": {"text": "C"},
    }
    assert model.calls == ["prepare", "forward", "finish"]


def test_a_bad_input_fails_alone_whichever_stage_it_breaks() -> None:
    for stage in ("prepare", "forward", "finish"):
        outcome = run(Staged(fail_in=stage), items("a", "bad", "c", "d"))
        assert outcome == {
            "a": {"text": "A"},
            "bad": "model_error",
            "c": {"text": "C"},
            "d": {"text": "D"},
        }, stage


def test_a_permanent_failure_keeps_its_code() -> None:
    class Rejecting(Staged):
        def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> list[str]:
            if any(len(t) > 3 for t in texts):
                raise PermanentFailure("input_too_long", "too long")
            return list(texts)

    assert run(Rejecting(), items("ok", "toolong")) == {
        "ok": {"text": "OK"},
        "toolong": "input_too_long",
    }


def test_a_finish_with_the_wrong_count_falls_back_to_predict() -> None:
    class Short(Staged):
        def finish(self, prepared: list[str], output: list[str]) -> list[Any]:
            return [{"text": t} for t in output][:1]

        def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
            return [{"text": t.upper()} for t in texts]

    assert run(Short(), items("a", "b")) == {"a": {"text": "A"}, "b": {"text": "B"}}


def test_a_predict_only_model_runs_whole_in_forward_and_params_split_batches() -> None:
    class Plain:
        def __init__(self) -> None:
            self.batches: list[list[str]] = []

        def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
            self.batches.append(list(texts))
            return [{"text": t, **params} for t in texts]

    model = Plain()
    odd = WorkItem(job_id="x", model="m", revision="1", task="embed", text="c", params={"k": 1})
    work = [*items("a", "b"), odd]
    assert run(model, work) == {"a": {"text": "a"}, "b": {"text": "b"}, "c": {"text": "c", "k": 1}}
    assert sorted(map(len, model.batches)) == [1, 2]


def test_a_lane_this_worker_does_not_serve_fails_with_its_reason() -> None:
    assert run(Staged(), items("a", model="other")) == {"a": "model_not_loaded"}


def test_batches_are_sorted_and_counted_by_the_lengths_measured_on_arrival() -> None:
    ctx = cast(WorkerContext, FakeContext(models={LANE: Staged()}))
    work = items("ccc", "a", "bb")
    computation = stages.prepare(ctx, work, lengths={"j0": 30, "j1": 10, "j2": 20})
    [batch] = computation.batches
    assert [i.text for i in batch.items] == ["a", "bb", "ccc"]
    assert batch.tokens == 60
