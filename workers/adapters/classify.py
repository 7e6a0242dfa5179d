"""``classify``: a sequence-classification model (``AutoModelForSequenceClassification``).

Each input gets its best label, its score, and the ranked labels (``top_k`` of them);
scores are a softmax over the labels, or one sigmoid per label for multi-label models,
so a text can carry several labels at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import transformers

from workers.adapters.base import (
    LoadSpec,
    Staged,
    check_finite,
    input_limit,
    load_module,
    load_tokenizer,
    long_inputs,
    pin,
    to_device,
)


@dataclass(frozen=True)
class PreparedBatch:
    """A tokenized batch and what ``finish`` needs from the job's params."""

    encoded: dict[str, torch.Tensor]
    truncated: list[bool]
    top_k: int | None
    multi_label: bool


class Classifier(Staged):
    """A loaded classifier; results follow the labels of the model's ``id2label``."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.model: Any = cast(
            Any, load_module(transformers.AutoModelForSequenceClassification, spec)
        )
        self.tokenizer: Any = load_tokenizer(spec)
        config = self.model.config
        self.labels = [str(config.id2label[i]) for i in range(int(config.num_labels))]
        # A model trained with BCE says so; a job may still ask for either scoring.
        self.multi_label_default = config.problem_type == "multi_label_classification"
        self.limit = input_limit(spec, self.tokenizer, config)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text gives the model, special tokens included, after truncation."""
        if not texts:
            return []
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.limit)["input_ids"]
        return [len(x) for x in ids]

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> PreparedBatch:
        """Tokenize, padded to the longest input and cut at the model's limit (or reject
        long inputs, as the catalogue entry says)."""
        multi_label = params.get("multi_label")
        top_k = params.get("top_k")
        truncated = long_inputs(self.spec, self.tokenizer, texts, limit=self.limit) if texts else []
        encoded = (
            pin(
                dict(
                    self.tokenizer(
                        list(texts),
                        padding=True,
                        truncation=True,
                        max_length=self.limit,
                        return_tensors="pt",
                    )
                ),
                self.spec.device,
            )
            if texts
            else {}
        )
        return PreparedBatch(
            encoded=encoded,
            truncated=truncated,
            top_k=int(top_k) if top_k is not None else None,
            multi_label=self.multi_label_default if multi_label is None else bool(multi_label),
        )

    def forward(self, prepared: PreparedBatch) -> torch.Tensor:
        """Logits, ``(batch, labels)``, as float32 on the CPU."""
        if not prepared.encoded:
            return torch.empty(0, len(self.labels))
        with torch.inference_mode():
            inputs = to_device(prepared.encoded, self.spec.device)
            logits: torch.Tensor = self.model(**inputs).logits
        return logits.float().cpu()

    def finish(self, prepared: PreparedBatch, output: torch.Tensor) -> list[Any]:
        """One dict per input: best label and score, the ranked labels, ``truncated``."""
        check_finite(output)
        scores = torch.sigmoid(output) if prepared.multi_label else torch.softmax(output, dim=-1)
        keep = len(self.labels) if prepared.top_k is None else prepared.top_k
        results: list[Any] = []
        for row, truncated in zip(scores.tolist(), prepared.truncated, strict=True):
            ranked = sorted(zip(self.labels, row, strict=True), key=lambda p: p[1], reverse=True)
            results.append(
                {
                    "label": ranked[0][0],
                    "score": ranked[0][1],
                    "labels": [{"label": name, "score": s} for name, s in ranked[:keep]],
                    "truncated": truncated,
                }
            )
        return results


def load(spec: LoadSpec) -> Classifier:
    """The adapter's entry point (see :mod:`workers.loading`)."""
    return Classifier(spec)
