"""``embed``: sentence embeddings from any sentence-transformers style folder.

The folder says how to pool: ``modules.json`` lists a Pooling module (its
``config.json`` picks CLS, mean or max over the last hidden state) and, when present, a
Normalize module (L2, the default of ``normalize``); ``sentence_bert_config.json``
gives the longest input. A plain transformers folder without them is mean-pooled and
not normalised. all-MiniLM-L6-v2 is this adapter with its package's folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel

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

POOLING_MODES = ("cls", "mean", "max")


@dataclass(frozen=True)
class Pooling:
    """How token states become one vector, as the folder declares it."""

    mode: str = "mean"
    normalize: bool = False
    max_seq_length: int | None = None


def read_pooling(folder: Path) -> Pooling:
    """The folder's sentence-transformers configuration (defaults when absent)."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return Pooling()
    modules = json.loads(modules_file.read_text())
    mode, normalize = "mean", False
    for module in modules:
        kind = str(module.get("type", ""))
        if kind.endswith(".Pooling"):
            config = json.loads((folder / module.get("path", "") / "config.json").read_text())
            if config.get("pooling_mode_cls_token"):
                mode = "cls"
            elif config.get("pooling_mode_max_tokens"):
                mode = "max"
            else:
                mode = "mean"
        elif kind.endswith(".Normalize"):
            normalize = True
    max_seq = None
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        max_seq = json.loads(sbert.read_text()).get("max_seq_length")
    return Pooling(mode=mode, normalize=normalize, max_seq_length=max_seq)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per row of ``hidden`` (batch, tokens, dim) over its real tokens."""
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        masked = hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min)
        return masked.max(dim=1).values
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


@dataclass
class Prepared:
    """A tokenized batch and what ``finish`` needs."""

    encoded: dict[str, torch.Tensor]
    normalize: bool


class Embedder(Staged):
    """A loaded embedding model on one device."""

    def __init__(self, spec: LoadSpec) -> None:
        assert spec.folder is not None
        self.spec = spec
        self.pooling = read_pooling(spec.folder)
        self.tokenizer = load_tokenizer(spec)
        self.model = load_module(AutoModel, spec)
        within = (
            min(spec.max_input_tokens, self.pooling.max_seq_length)
            if spec.max_input_tokens and self.pooling.max_seq_length
            else spec.max_input_tokens or self.pooling.max_seq_length
        )
        self.limit = input_limit(
            LoadSpec(**{**spec.__dict__, "max_input_tokens": within}),
            self.tokenizer,
            getattr(self.model, "config", None),
        )

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens read per text (truncated, unpadded)."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.limit)["input_ids"]
        return [len(x) for x in ids]

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> Prepared:
        """Tokenize, truncating at the model's limit (or rejecting, as configured)."""
        if self.spec.on_long_input == "reject":
            long_inputs(self.spec, self.tokenizer, texts, limit=self.limit)
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.limit,
            return_tensors="pt",
        )
        encoded = pin(dict(encoded), self.spec.device)
        normalize = params.get("normalize")
        return Prepared(
            encoded=encoded,
            normalize=self.pooling.normalize if normalize is None else bool(normalize),
        )

    def forward(self, prepared: Prepared) -> torch.Tensor:
        """Pooled (and normalised) float32 vectors on the host."""
        encoded = to_device(prepared.encoded, self.spec.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            pooled = pool(hidden, encoded["attention_mask"], self.pooling.mode).float()
            if prepared.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu()

    def finish(self, prepared: Prepared, output: torch.Tensor) -> list[Any]:
        """One float32 vector per input."""
        del prepared
        check_finite(output)
        vectors: np.ndarray[Any, Any] = output.numpy()
        return list(vectors)


def load(spec: LoadSpec) -> Embedder:
    """The adapter's loader."""
    return Embedder(spec)
