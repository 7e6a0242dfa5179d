"""The ``classify`` adapter (:mod:`workers.adapters.classify`) against transformers itself,
on a tiny random BERT classifier built offline."""

from __future__ import annotations

import functools
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from infq.catalogue.entries import DType
from infq.catalogue.params import ClassifyParams
from infq.errors import PermanentFailure
from tests.tiny_models import build_classifier
from workers.adapters.base import LoadSpec
from workers.adapters.classify import Classifier, load

LABELS = ("negative", "neutral", "positive", "mixed")
TEXTS = [
    "I loved every minute of it.",
    "Terrible service, never again!",
    "It was fine, I suppose.",
    "",
    "The weather in Hertfordshire was mild for the season, and the whole family "
    "walked to Meryton in the morning to hear the news of the regiment.",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier(tmp_path_factory.mktemp("classifier"), labels=LABELS)


def spec_for(folder: Path, **overrides: Any) -> LoadSpec:
    return LoadSpec(model="tiny-classifier", revision="1", folder=folder, **overrides)


def params(**given: Any) -> dict[str, Any]:
    """Params as a worker receives them: validated and complete."""
    return ClassifyParams(**given).model_dump()


@functools.cache
def _reference(folder: Path) -> tuple[Any, Any]:
    return (
        AutoTokenizer.from_pretrained(folder, local_files_only=True),
        AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True),
    )


def direct_logits(folder: Path, texts: list[str], *, max_length: int = 512) -> torch.Tensor:
    """Logits from transformers, each text alone (no padding at all)."""
    tokenizer, model = _reference(folder)
    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            rows.append(model(**encoded).logits[0])
    return torch.stack(rows)


def test_results_match_transformers_softmax(folder: Path) -> None:
    got = load(spec_for(folder)).predict("classify", TEXTS, params())
    expected = torch.softmax(direct_logits(folder, TEXTS), dim=-1)
    for result, probs in zip(got, expected.tolist(), strict=True):
        best = max(range(len(LABELS)), key=lambda i: probs[i])
        assert result["label"] == LABELS[best]
        assert result["score"] == pytest.approx(probs[best], abs=1e-5)
        assert {x["label"]: x["score"] for x in result["labels"]} == pytest.approx(
            dict(zip(LABELS, probs, strict=True)), abs=1e-5
        )
        assert result["truncated"] is False
        assert math.fsum(x["score"] for x in result["labels"]) == pytest.approx(1.0, abs=1e-5)


def test_labels_are_ranked_and_cut_to_top_k(folder: Path) -> None:
    model = Classifier(spec_for(folder))
    for top_k, expected in ((1, 1), (2, 2), (None, len(LABELS)), (1000, len(LABELS))):
        for result in model.predict("classify", TEXTS, params(top_k=top_k)):
            scores = [x["score"] for x in result["labels"]]
            assert len(scores) == expected
            assert scores == sorted(scores, reverse=True)
            assert result["labels"][0] == {"label": result["label"], "score": result["score"]}


def test_multi_label_scores_each_label_with_a_sigmoid(folder: Path) -> None:
    got = load(spec_for(folder)).predict("classify", TEXTS, params(multi_label=True))
    expected = torch.sigmoid(direct_logits(folder, TEXTS))
    for result, probs in zip(got, expected.tolist(), strict=True):
        assert {x["label"]: x["score"] for x in result["labels"]} == pytest.approx(
            dict(zip(LABELS, probs, strict=True)), abs=1e-5
        )


def test_a_multi_label_model_uses_sigmoids_unless_the_job_says_otherwise(
    folder: Path, tmp_path: Path
) -> None:
    # Given a copy of the model whose config declares multi-label training
    multi = tmp_path / "multi"
    shutil.copytree(folder, multi)
    config = AutoConfig.from_pretrained(multi, local_files_only=True)
    config.problem_type = "multi_label_classification"
    config.save_pretrained(multi)
    model = load(spec_for(multi))
    logits = direct_logits(folder, TEXTS[:2])

    # Then params without multi_label follow the config, and multi_label=False overrides it
    by_default = model.predict("classify", TEXTS[:2], params())
    forced_single = model.predict("classify", TEXTS[:2], params(multi_label=False))
    for results, probs in (
        (by_default, torch.sigmoid(logits)),
        (forced_single, torch.softmax(logits, dim=-1)),
    ):
        for result, row in zip(results, probs.tolist(), strict=True):
            assert result["score"] == pytest.approx(max(row), abs=1e-5)


def test_long_inputs_are_truncated_and_flagged(folder: Path) -> None:
    model = load(spec_for(folder, max_input_tokens=12))
    got = model.predict("classify", TEXTS, params())
    assert [r["truncated"] for r in got] == [False, False, False, False, True]
    assert max(model.token_lengths(TEXTS)) == 12
    expected = torch.softmax(direct_logits(folder, TEXTS, max_length=12), dim=-1)
    for result, probs in zip(got, expected.tolist(), strict=True):
        assert result["score"] == pytest.approx(max(probs), abs=1e-5)


def test_token_lengths_count_special_tokens(folder: Path) -> None:
    model = load(spec_for(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert model.token_lengths(TEXTS) == [len(tokenizer(t)["input_ids"]) for t in TEXTS]
    assert model.token_lengths([""]) == [2]  # [CLS] [SEP]


def test_reject_fails_long_inputs_with_input_too_long(folder: Path) -> None:
    model = load(spec_for(folder, max_input_tokens=12, on_long_input="reject"))
    with pytest.raises(PermanentFailure) as failure:
        model.predict("classify", TEXTS, params())
    assert failure.value.code == "input_too_long"
    assert len(model.predict("classify", TEXTS[:4], params())) == 4


def test_an_empty_batch_gives_no_results(folder: Path) -> None:
    assert load(spec_for(folder)).predict("classify", [], params()) == []


def test_non_finite_logits_fail_the_batch(folder: Path) -> None:
    model = load(spec_for(folder))
    prepared = model.prepare(TEXTS[:2], params())
    with pytest.raises(PermanentFailure) as failure:
        model.finish(prepared, torch.tensor([[0.0, 1.0, 2.0, 3.0], [float("nan"), 0, 0, 0]]))
    assert failure.value.code == "non_finite_output"


def test_int8_loads_and_mostly_agrees_with_float32(folder: Path) -> None:
    sentences = (Path(__file__).parents[2] / "infq/demo/data/sentences.txt").read_text()
    texts = sentences.splitlines()[:40]
    quantized = load(spec_for(folder, dtype=DType.INT8))
    assert any(
        isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantized.model.modules()
    )
    full = load(spec_for(folder)).predict("classify", texts, params())
    int8 = quantized.predict("classify", texts, params())
    assert len({r["label"] for r in full}) > 1  # else agreeing would prove nothing
    agree = sum(a["label"] == b["label"] for a, b in zip(full, int8, strict=True))
    assert agree >= 0.8 * len(texts)
