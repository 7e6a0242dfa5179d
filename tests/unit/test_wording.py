"""One wording of pydantic's errors for every edge (:mod:`schemas.wording`)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pydantic import ValidationError

from infq.api.errors import describe_validation
from schemas.jobs import JobRequest
from schemas.wording import describe


def _errors(body: Mapping[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        JobRequest.model_validate(body)
    return caught.value


def test_a_typo_reads_first_as_an_unknown_field() -> None:
    error = _errors({"modle": "echo", "input": {"text": "x"}})
    assert describe(error.errors()) == "modle: unknown field; model: field required"


def test_rest_and_kafka_word_a_typo_alike() -> None:
    errors = _errors({"modle": "echo", "input": {"text": "x"}}).errors()
    detail, _ = describe_validation(errors)
    assert detail.startswith(describe(errors).split(";")[0])


def test_at_most_five_errors_then_how_many_more() -> None:
    body = {f"extra{n}": n for n in range(7)}
    words = describe(_errors(body).errors())
    assert words.count("unknown field") == 5
    assert words.endswith("; and 4 more")  # 7 unknown fields, a missing model and input


def test_other_errors_keep_pydantics_message() -> None:
    words = describe(_errors({"model": "echo", "input": {"text": "x"}, "priority": 10}).errors())
    assert words == "priority: Input should be less than or equal to 9"
