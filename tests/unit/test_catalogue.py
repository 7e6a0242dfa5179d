"""Model lookup and edge validation in :mod:`infq.catalogue` (metadata only, no torch)."""

from __future__ import annotations

from typing import Any

import pytest

from infq.catalogue.catalogue import Catalogue, builtin_entries
from infq.catalogue.entries import Entry
from infq.errors import InfqError, RejectedRecord, UnknownModel
from workers.adapters.echo import EchoModel
from workers.loading import load_lane

REGISTRY = Catalogue(builtin_entries())
MINILM = REGISTRY.get("all-MiniLM-L6-v2")
ECHO = REGISTRY.get("echo")


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
def test_get_is_case_insensitive_and_knows_aliases(name: str, expected: Entry) -> None:
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
    assert caught.value.field == "task"
    assert caught.value.message == "task: model 'all-MiniLM-L6-v2' has no task 'echo'; tasks: embed"


@pytest.mark.parametrize(
    ("params", "where"),
    [({"normalise": True}, "params.normalise"), ({"normalize": "maybe"}, "params.normalize")],
)
def test_check_job_refuses_bad_params_naming_the_field(params: dict[str, Any], where: str) -> None:
    with pytest.raises(RejectedRecord) as caught:
        REGISTRY.check_job(model="all-MiniLM-L6-v2", task=None, params=params)
    assert caught.value.code == "invalid_params"
    assert caught.value.field == where
    assert caught.value.message.startswith(f"{where}: ")
    assert caught.value.message.endswith("(model 'all-MiniLM-L6-v2')")


def test_a_catalogue_resolves_every_alias_of_its_own_entries() -> None:
    entry = Entry.model_validate(
        {
            "name": "Tiny",
            "task": "echo",
            "factory": "workers.adapters.echo:EchoModel",
            "revision": "t-1",
            "aliases": ["org/tiny", "tiny-v1"],
        }
    )
    catalogue = Catalogue([entry])
    assert catalogue.get("ORG/TINY") is catalogue.get("tiny-v1") is catalogue.get("tiny") is entry
    assert catalogue.names == ["Tiny"]
    assert [lane.name for lane in catalogue.lanes()] == ["Tiny@t-1"]


def test_load_imports_the_factory_named_by_the_entry() -> None:
    assert isinstance(load_lane(REGISTRY.lanes(["echo"])[0], device="cpu"), EchoModel)


def test_revision_overrides_apply_and_unknown_names_are_refused() -> None:
    bumped = REGISTRY.with_revisions({"echo": "echo-2"})
    assert [r.name for r in bumped.get("echo").revisions] == ["echo-2"]
    assert bumped.get("all-MiniLM-L6-v2").revisions == MINILM.revisions
    with pytest.raises(UnknownModel):
        REGISTRY.with_revisions({"minilm": "x"})
