"""Model lookup and edge validation in :mod:`workers.registry` (metadata only, no torch)."""

from __future__ import annotations

from typing import Any

import pytest

from infq.errors import InfqError, RejectedRecord, UnknownModel
from workers.models.echo import EchoModel
from workers.registry import ECHO, MINILM, ModelRegistry, ModelSpec, default_registry

REGISTRY = default_registry()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("all-MiniLM-L6-v2", MINILM),
        ("ALL-minilm-L6-V2", MINILM),
        ("sentence-transformers/all-MiniLM-L6-v2", MINILM),
        ("Sentence-Transformers/ALL-MINILM-L6-V2", MINILM),
        ("echo", ECHO),
        ("ECHO", ECHO),
    ],
)
def test_get_is_case_insensitive_and_knows_aliases(name: str, expected: ModelSpec) -> None:
    assert REGISTRY.get(name) == expected


def test_names_are_the_sorted_canonical_names_without_aliases() -> None:
    assert REGISTRY.names == ["all-MiniLM-L6-v2", "echo"]


def test_unknown_model_carries_its_data() -> None:
    with pytest.raises(UnknownModel) as caught:
        REGISTRY.get("minilm")
    error = caught.value
    assert isinstance(error, InfqError)
    assert error.name == "minilm"
    assert error.known == ["all-MiniLM-L6-v2", "echo"]
    assert str(error) == "unknown model 'minilm'; known: all-MiniLM-L6-v2, echo"


def test_an_alias_is_not_looked_up_as_a_prefix() -> None:
    with pytest.raises(UnknownModel):
        REGISTRY.get("sentence-transformers")


def test_check_job_resolves_the_default_task_and_fills_param_defaults() -> None:
    spec, task, params = REGISTRY.check_job(model="Echo", task=None, params={"upper": True})
    assert (spec, task, params) == (ECHO, "echo", {"upper": True, "fail": False, "delay_ms": 0})


def test_check_job_accepts_an_explicit_supported_task() -> None:
    spec, task, params = REGISTRY.check_job(
        model="sentence-transformers/all-MiniLM-L6-v2", task="embed", params={}
    )
    assert (spec, task, params) == (MINILM, "embed", {"normalize": True})


def test_check_job_turns_unknown_model_into_a_rejection() -> None:
    with pytest.raises(RejectedRecord) as caught:
        REGISTRY.check_job(model="gpt", task=None, params={})
    assert caught.value.code == "unknown_model"
    assert "known: all-MiniLM-L6-v2, echo" in caught.value.message
    assert isinstance(caught.value.__cause__, UnknownModel)


def test_check_job_refuses_a_task_the_model_lacks() -> None:
    with pytest.raises(RejectedRecord) as caught:
        REGISTRY.check_job(model="all-MiniLM-L6-v2", task="echo", params={})
    assert caught.value.code == "unsupported_task"
    assert caught.value.message == ("model 'all-MiniLM-L6-v2' has no task 'echo'; tasks: embed")


@pytest.mark.parametrize(
    ("params", "where"),
    [({"normalise": True}, "params.normalise"), ({"normalize": "maybe"}, "params.normalize")],
)
def test_check_job_refuses_bad_params_naming_the_field(params: dict[str, Any], where: str) -> None:
    with pytest.raises(RejectedRecord) as caught:
        REGISTRY.check_job(model="all-MiniLM-L6-v2", task=None, params=params)
    assert caught.value.code == "invalid_params"
    assert caught.value.message.startswith(f"{where}: ")
    assert caught.value.message.endswith("(model 'all-MiniLM-L6-v2')")


def test_a_registry_resolves_every_alias_of_its_own_specs() -> None:
    spec = ModelSpec(
        name="Tiny",
        tasks=("echo", "embed"),
        loader="workers.models.echo:load",
        revision="t-1",
        params=ECHO.params,
        aliases=("org/tiny", "tiny-v1"),
    )
    registry = ModelRegistry([spec])
    assert registry.get("ORG/TINY") is registry.get("tiny-v1") is registry.get("tiny") is spec
    assert spec.default_task == "echo"
    assert registry.names == ["Tiny"]


def test_load_imports_the_loader_named_by_the_spec() -> None:
    assert isinstance(ECHO.load(device="cpu"), EchoModel)


def test_revision_overrides_apply_and_unknown_names_are_refused() -> None:
    bumped = default_registry({"echo": "echo-2"})
    assert bumped.get("echo").revision == "echo-2"
    assert bumped.get("all-MiniLM-L6-v2").revision == MINILM.revision
    with pytest.raises(UnknownModel):
        default_registry({"minilm": "x"})
