"""The ``echo`` pipeline-test model (:mod:`workers.adapters.echo`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from infq.errors import PermanentFailure
from workers.adapters.echo import EchoModel
from workers.batching import run_bisecting


def test_echo_returns_each_text_and_its_length_in_characters() -> None:
    model = EchoModel(device="cpu")
    assert isinstance(model, EchoModel)
    assert model.predict("echo", ["hi", "héllo", ""], {}) == [
        {"text": "hi", "length": 2},
        {"text": "héllo", "length": 5},
        {"text": "", "length": 0},
    ]


def test_echo_upper_cases_when_asked() -> None:
    got = EchoModel().predict("echo", ["abc", "ß"], {"upper": True, "fail": False})
    assert got == [{"text": "ABC", "length": 3}, {"text": "SS", "length": 1}]


def test_echo_fail_raises_a_permanent_failure() -> None:
    with pytest.raises(PermanentFailure) as caught:
        EchoModel().predict("echo", ["a"], {"fail": True})
    assert caught.value.code == "echo_fail"
    assert "params.fail" in caught.value.message


def test_echo_fail_reaches_every_job_of_the_batch_with_its_code() -> None:
    model = EchoModel()

    def run(batch: Sequence[str]) -> list[Any]:
        return model.predict("echo", batch, {"fail": True})

    outcomes = run_bisecting(["a", "b", "c"], run)
    assert [(o.result, o.error.code if o.error else None) for o in outcomes] == [
        (None, "echo_fail")
    ] * 3
