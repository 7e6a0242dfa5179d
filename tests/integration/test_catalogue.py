"""Models declared only in a catalogue file, end to end through Kafka on the real stack:
an embedder, a classifier, a causal LM and custom code, each checked against a direct
transformers call on the same inputs; then a canary route, a pinned job and a rollback
on the live system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from infq.db.session import make_engine, make_sessionmaker
from infq.settings import Settings
from producers.sdk import JobProducer
from tests.integration.conftest import LOG_DIR
from tests.integration.harness import (
    InfqProcess,
    completion_events,
    isolated_env,
    jobs_by_id,
    settings_for,
    wait_final,
    wait_for,
)
from tests.tiny_models import build_classifier, build_embedder, build_gpt2

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TEXTS = [
    "The service was quick and friendly.",
    "Terrible, I waited an hour.",
    "ok",
    "A longer sentence that says a good deal more than the others do, at some length.",
    "Prices went up again this month",
]
PROMPTS = ["The weather", "A long time ago in a quiet town there", "Hello", "Queues are"]


@pytest.fixture(scope="module")
def world(
    stack_env: dict[str, str], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """An infq of its own with a catalogue file: tiny models built offline in a temp
    folder, a custom model from examples/, and a two-revision model for routes."""
    root = tmp_path_factory.mktemp("catalogue")
    folders = {
        "embed": build_embedder(root / "embed", pooling="cls", normalize=False),
        "classify": build_classifier(root / "classify"),
        "generate": build_gpt2(root / "gpt"),
    }
    catalogue = root / "models.toml"
    catalogue.write_text(
        f"""
[[models]]
name = "tiny-embed"
task = "embed"
path = "{folders["embed"]}"
revision = "e1"

[[models]]
name = "tiny-sentiment"
aliases = ["sentiment"]
task = "classify"
path = "{folders["classify"]}"
revision = "c1"
batching = {{ max_batch_tokens = 256, max_wait_ms = 20 }}

[[models]]
name = "strict-sentiment"
task = "classify"
path = "{folders["classify"]}"
revision = "s1"
max_input_tokens = 8
on_long_input = "reject"

[[models]]
name = "tiny-gpt"
task = "generate"
path = "{folders["generate"]}"
revision = "g1"
max_new_tokens = 12

[[models]]
name = "greeter"
task = "custom"
options = {{ greeting = "hi" }}
route = {{ v1 = 100 }}

[[models.revisions]]
name = "v1"
factory = "examples.custom_model:build"

[[models.revisions]]
name = "v2"
factory = "examples.custom_model:Greeter"
"""
    )
    env = isolated_env(
        stack_env,
        settings,
        name="catalogue",
        extra={
            "INFQ_MODELS_FILE": str(catalogue),
            "INFQ_INLINE_RESULT_MAX_BYTES": "65536",
            "PYTHONPATH": str(REPO),  # the custom model's module, as a user's code would be
        },
    )
    lanes = ["tiny-embed", "tiny-sentiment", "strict-sentiment", "tiny-gpt", "greeter@v1"]
    procs = [
        InfqProcess(["worker", *(a for m in lanes for a in ("--model", m))], env=env,
                    log_path=LOG_DIR / "catalogue-worker.log"),
        InfqProcess(["dispatcher"], env=env, log_path=LOG_DIR / "catalogue-dispatcher.log"),
    ]  # fmt: skip
    own = settings_for(env)
    engine = make_engine(own.database)
    try:
        yield {"env": env, "settings": own, "sessions": make_sessionmaker(engine), **folders}
    finally:
        for p in procs:
            p.stop()
        engine.dispose()


def submit(world: dict[str, Any], model: str, texts: list[str], **fields: Any) -> list[uuid.UUID]:
    settings: Settings = world["settings"]
    with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
        return [producer.submit(model=model, text=t, **fields) for t in texts]


def results(world: dict[str, Any], ids: list[uuid.UUID], timeout_s: float = 180) -> list[Any]:
    rows = wait_final(world["sessions"], ids, timeout_s=timeout_s)
    assert all(rows[i].status == "succeeded" for i in ids), [
        (rows[i].status, rows[i].error_code, rows[i].error_message) for i in ids
    ]
    return [rows[i].result_inline for i in ids]


def infq_cli(world: dict[str, Any], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "infq", *args],
        env={**os.environ, **world["env"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_an_embedder_from_a_folder_pools_as_its_config_says(world: dict[str, Any]) -> None:
    got = results(world, submit(world, "tiny-embed", TEXTS))
    tokenizer = AutoTokenizer.from_pretrained(world["embed"], local_files_only=True)
    model = AutoModel.from_pretrained(world["embed"], local_files_only=True).eval()
    with torch.inference_mode():
        for text, vector in zip(TEXTS, got, strict=True):
            hidden = model(**tokenizer([text], return_tensors="pt")).last_hidden_state
            expected = hidden[0, 0].numpy()  # CLS pooling, not normalised
            np.testing.assert_allclose(np.asarray(vector), expected, rtol=1e-4, atol=1e-5)


def test_a_classifier_returns_labels_and_scores_as_transformers_computes_them(
    world: dict[str, Any],
) -> None:
    got = results(world, submit(world, "sentiment", TEXTS, params={"top_k": 2}))
    tokenizer = AutoTokenizer.from_pretrained(world["classify"], local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        world["classify"], local_files_only=True
    ).eval()
    with torch.inference_mode():
        for text, result in zip(TEXTS, got, strict=True):
            probs = model(**tokenizer([text], return_tensors="pt")).logits.softmax(-1)[0]
            best = int(probs.argmax())
            assert result["label"] == model.config.id2label[best]
            assert result["score"] == pytest.approx(float(probs[best]), abs=1e-5)
            assert len(result["labels"]) == 2
            assert result["truncated"] is False


def test_a_model_that_rejects_long_inputs_refuses_them_at_intake(world: dict[str, Any]) -> None:
    short, long = submit(world, "strict-sentiment", ["ok", TEXTS[3]])
    rows = wait_final(world["sessions"], [short, long])
    assert rows[short].status == "succeeded"
    result: Any = rows[short].result_inline
    assert result["truncated"] is False
    assert (rows[long].status, rows[long].error_code) == ("rejected", "input_too_long")
    assert "accepts at most 8" in (rows[long].error_message or "")
    assert rows[long].started_at is None  # never reached a worker


def test_a_causal_lm_generates_greedily_as_a_lone_prompt_would(world: dict[str, Any]) -> None:
    ids = submit(world, "tiny-gpt", PROMPTS, params={"max_new_tokens": 8})
    got = results(world, ids)
    tokenizer = AutoTokenizer.from_pretrained(world["generate"], local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(world["generate"], local_files_only=True)
    model.eval()
    with torch.inference_mode():
        for prompt, result in zip(PROMPTS, got, strict=True):
            encoded = tokenizer([prompt], return_tensors="pt")
            out = model.generate(**encoded, max_new_tokens=8, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)  # fmt: skip
            new = out[0, encoded["input_ids"].shape[1] :]
            assert result["text"] == tokenizer.decode(new, skip_special_tokens=True)
            assert result["prompt_tokens"] == encoded["input_ids"].shape[1]
            assert result["finish_reason"] in ("stop", "length")
    # A bound the catalogue sets is enforced at the edge
    over = submit(world, "tiny-gpt", ["x"], params={"max_new_tokens": 50})[0]
    row = wait_final(world["sessions"], [over])[over]
    assert (row.status, row.error_code) == ("rejected", "invalid_params")


def test_custom_code_runs_with_its_options_and_params(world: dict[str, Any]) -> None:
    got = results(world, submit(world, "greeter", ["world", "two words"],
                                params={"punctuation": "?"}))  # fmt: skip
    assert got == [
        {"greeting": "hi, world?", "words": 1},
        {"greeting": "hi, two words?", "words": 2},
    ]
    ids = submit(world, "greeter", ["x"], params={"punctuation": "!!!!"})
    row = wait_final(world["sessions"], ids)[ids[0]]
    assert (row.status, row.error_code) == ("failed", "invalid_params")


def test_a_canary_route_splits_new_jobs_and_a_pinned_job_keeps_its_revision(
    world: dict[str, Any],
) -> None:
    # Given a worker for the canary revision beside the v1 worker, and a 90/10 route
    canary = InfqProcess(["worker", "--model", "greeter@v2"], env=world["env"],
                         log_path=LOG_DIR / "catalogue-worker-v2.log")  # fmt: skip
    try:
        infq_cli(world, "models", "route", "greeter", "v1=90", "v2=10")
        time.sleep(2.5)  # dispatchers re-read routes every 2 s
        # When 1,000 jobs arrive (ids fixed, so the split is reproducible)
        texts = [f"canary {n}" for n in range(1000)]
        settings: Settings = world["settings"]
        with JobProducer(settings.kafka, topic=settings.jobs_topic) as producer:
            ids = producer.submit_many(texts, model="greeter", cache=False)
        pinned = submit(world, "greeter", ["pinned"], revision="v2", cache=False)
        rows = wait_final(world["sessions"], [*ids, *pinned], timeout_s=240)
    finally:
        canary.stop()
    # Then about 10 % ran on v2, each revision's worker computed its own
    split = Counter(rows[i].model_revision for i in ids)
    assert all(rows[i].status == "succeeded" for i in ids)
    assert 70 <= split["v2"] <= 130, split
    assert split["v1"] + split["v2"] == 1000
    assert rows[pinned[0]].model_revision == "v2"
    events = completion_events(world["settings"], pinned)
    assert events[str(pinned[0])][0]["model_revision"] == "v2"
    listing = json.loads(infq_cli(world, "models", "list", "--json"))
    greeter = next(m for m in listing if m["model"] == "greeter")
    assert greeter["route"] == {"v1": 90, "v2": 10}
    assert greeter["route_stored"] is True


def test_a_rollback_restores_the_route_and_moves_jobs_waiting_for_the_bad_revision(
    world: dict[str, Any],
) -> None:
    # Given v2 rolled out to half the jobs while no worker serves v2 (it is broken)
    infq_cli(world, "models", "route", "greeter", "v1=100")
    infq_cli(world, "models", "route", "greeter", "v1=50", "v2=50")
    time.sleep(2.5)
    ids = submit(world, "greeter", [f"rollout {n}" for n in range(60)], cache=False)
    pinned = submit(world, "greeter", ["stays on v2"], revision="v2", cache=False)
    sessions: sessionmaker[Session] = world["sessions"]

    def split_known() -> bool:
        rows = jobs_by_id(sessions, ids)
        return len(rows) == 60 and sum(r.status == "succeeded" for r in rows.values()) >= 10

    wait_for(split_known, timeout_s=120, what="v1's share to be computed")
    waiting = [i for i, r in jobs_by_id(sessions, ids).items() if r.model_revision == "v2"]
    assert waiting
    assert all(jobs_by_id(sessions, waiting)[i].status == "queued" for i in waiting)
    # When the operator rolls back
    out = infq_cli(world, "models", "rollback", "greeter")
    assert "v1=100%" in out
    # Then the waiting jobs run on v1, new jobs go to v1, and the pinned job stays on v2
    rows = wait_final(sessions, ids, timeout_s=120)
    assert {rows[i].model_revision for i in ids} == {"v1"}
    assert all(r.status == "succeeded" for r in rows.values())
    time.sleep(2.5)
    after = submit(world, "greeter", [f"after {n}" for n in range(20)], cache=False)
    assert {r.model_revision for r in wait_final(sessions, after).values()} == {"v1"}
    held = jobs_by_id(sessions, pinned)[pinned[0]]
    assert (held.status, held.model_revision) == ("queued", "v2")
