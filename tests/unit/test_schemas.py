"""The wire contract: checked-in JSON Schema files match the pydantic models in ``schemas``."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any, cast

import orjson
import pytest
from pydantic import BaseModel

from infq.errors import RejectedRecord
from schemas.export import EXPORTS, SCHEMA_DIR, render
from schemas.jobs import JobRequest, decode_job_request


def _example() -> dict[str, Any]:
    """A private copy of the documented example: tests edit it."""
    extra = cast(dict[str, Any], JobRequest.model_config["json_schema_extra"])
    example: dict[str, Any] = copy.deepcopy(extra["examples"][0])
    return example


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


@pytest.mark.parametrize(("name", "model"), EXPORTS.items(), ids=list(EXPORTS))
def test_checked_in_schema_matches_the_model(name: str, model: type[BaseModel]) -> None:
    path = SCHEMA_DIR / name
    assert path.is_file(), f"{path} is missing: run `python -m schemas.export`"
    assert path.read_text(encoding="utf-8") == render(model), (
        f"{path} is out of date with {model.__name__}: run `python -m schemas.export`"
    )


def test_every_schema_file_is_exported() -> None:
    on_disk = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(EXPORTS), "stale or unexported schema files in schemas/json/"


def test_render_is_stable_draft_2020_12_json() -> None:
    text = render(JobRequest)
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "infq job request"
    assert schema["additionalProperties"] is False
    assert text == render(JobRequest)
    assert text.endswith("}\n")


def test_decode_accepts_the_documented_example() -> None:
    example = _example()
    request = decode_job_request(orjson.dumps(example), max_record_bytes=4096)
    assert request.job_id == uuid.UUID(example["job_id"])
    assert request.model == example["model"]
    assert request.input.text == example["input"]["text"]
    assert request.metadata == example["metadata"]


def test_decode_refuses_a_typo_with_the_job_id_recovered() -> None:
    example = _example()
    example["modle"] = example.pop("model")
    with pytest.raises(RejectedRecord) as caught:
        decode_job_request(orjson.dumps(example), max_record_bytes=4096)
    assert caught.value.code == "invalid_record"
    assert caught.value.job_id == example["job_id"]
    assert "modle" in caught.value.message


def test_exported_schema_validates_the_example_and_refuses_a_typo() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(_schema("job-request.v1.schema.json"))
    example = _example()
    validator.validate(example)

    example["modle"] = example.pop("model")
    errors = [e.message for e in validator.iter_errors(example)]
    assert any("modle" in m for m in errors), errors
    assert any("'model' is a required property" in m for m in errors), errors
