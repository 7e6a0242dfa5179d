"""What every task adapter shares: where weights are, device and precision, truncation.

An adapter turns a catalogue revision into a loaded model with three stages —
``prepare`` (tokenize, CPU), ``forward`` (the device pass), ``finish`` (decode results,
CPU) — so the worker can later overlap them; ``predict`` runs the three in a row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers

from infq.catalogue.entries import DType
from infq.errors import ConfigurationError, PermanentFailure

log = logging.getLogger("infq.worker")


@dataclass(frozen=True)
class LoadSpec:
    """A catalogue revision, resolved for one worker process."""

    model: str
    revision: str
    folder: Path | None  # the weights; None for factory-built custom models
    dtype: DType = DType.FLOAT32
    device: str = "cpu"
    max_input_tokens: int | None = None  # None: the model's own limit
    on_long_input: str = "truncate"  # or "reject"
    max_new_tokens: int = 128
    options: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        """``model@revision`` for messages."""
        return f"{self.model}@{self.revision}"


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(f"INFQ_DEVICE={requested} but CUDA is not available")
    return requested


TORCH_DTYPES = {
    DType.FLOAT32: torch.float32,
    DType.FLOAT16: torch.float16,
    DType.BFLOAT16: torch.bfloat16,
    DType.INT8: torch.float32,  # weights load in float32, then Linear layers quantize
}


def load_module(auto_class: Any, spec: LoadSpec) -> torch.nn.Module:
    """Weights from ``spec.folder`` (offline) on the device, in the revision's precision.

    ``int8`` is PyTorch dynamic quantization (:func:`int8_layers`): Linear weights
    stored as int8, activations quantized per batch. It exists for CPU only, so asking
    for it on CUDA is an error.
    """
    if spec.folder is None:
        raise ConfigurationError(f"{spec.where()}: this task needs a path or package source")
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    if spec.dtype is DType.INT8 and spec.device != "cpu":
        raise ConfigurationError(
            f"{spec.where()}: dtype int8 (dynamic quantization) runs on CPU only; "
            "use float16 or bfloat16 on CUDA"
        )
    options = {"local_files_only": True, "dtype": TORCH_DTYPES[spec.dtype]}
    try:
        # PyTorch's fused scaled-dot-product attention (flash / memory-efficient
        # kernels on CUDA); an architecture without it loads with its own attention.
        module = auto_class.from_pretrained(str(spec.folder), attn_implementation="sdpa", **options)
    except (ValueError, ImportError):
        log.info("%s: no SDPA attention for this architecture; using its default", spec.where())
        module = auto_class.from_pretrained(str(spec.folder), **options)
    module.to(spec.device).eval()
    if spec.dtype is DType.INT8:
        module = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            module, int8_layers(module), dtype=torch.qint8
        )
    return module  # type: ignore[no-any-return]


def int8_layers(module: torch.nn.Module) -> dict[str, Any]:
    """Linear layers to quantize, each with per-output-channel weight scales.

    Down projections (more inputs than outputs, e.g. a transformer's feed-forward
    output) stay in float: their inputs carry the largest activation outliers, which a
    per-batch activation scale handles worst. On MiniLM (this machine, 515 texts): all
    layers per tensor gave cosine 0.936 mean; all per channel 0.974 mean, 0.864 min,
    1.57x float32; without down projections 0.986 mean, 0.937 min, 1.44x.
    """
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    return {
        name: qconfig
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear) and layer.in_features <= layer.out_features
    }


def load_tokenizer(spec: LoadSpec, **kwargs: Any) -> Any:
    """The folder's tokenizer (fast when the folder has one)."""
    if spec.folder is None:
        raise ConfigurationError(f"{spec.where()}: this task needs a path or package source")
    return transformers.AutoTokenizer.from_pretrained(
        str(spec.folder), local_files_only=True, **kwargs
    )


def input_limit(spec: LoadSpec, tokenizer: Any, config: Any) -> int:
    """Tokens one input may have: the catalogue's limit, within what the model can read."""
    limits = [
        n
        for n in (
            spec.max_input_tokens,
            getattr(config, "max_position_embeddings", None),
            getattr(config, "n_positions", None),
        )
        if isinstance(n, int) and n > 0
    ]
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_max, int) and 0 < tokenizer_max < 1_000_000:
        limits.append(tokenizer_max)
    return min(limits) if limits else 512


def measure(tokenizer: Any, texts: Sequence[str], **kwargs: Any) -> list[int]:
    """Untruncated token counts (special tokens included)."""
    ids = tokenizer(list(texts), truncation=False, **kwargs)["input_ids"]
    return [len(x) for x in ids]


def long_inputs(
    spec: LoadSpec, tokenizer: Any, texts: Sequence[str], *, limit: int, **kwargs: Any
) -> list[bool]:
    """Which inputs exceed ``limit`` tokens; with ``reject``, any of them fails the call
    (the worker then splits the batch, so only the long inputs fail)."""
    lengths = measure(tokenizer, texts, **kwargs)
    flags = [n > limit for n in lengths]
    if spec.on_long_input == "reject" and any(flags):
        longest = max(lengths)
        raise PermanentFailure(
            "input_too_long",
            f"input has {longest} tokens; model {spec.model!r} accepts at most {limit} "
            "(its catalogue entry says on_long_input = 'reject')",
        )
    return flags


def pin(tensors: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    """Page-locked host copies when the device is CUDA, made in ``prepare`` (off the
    forward thread), so :func:`to_device` copies asynchronously; as is on the CPU."""
    if not device.startswith("cuda"):
        return tensors
    return {k: v.pin_memory() for k, v in tensors.items()}


def to_device(tensors: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    """The batch on the device; non-blocking from pinned memory on CUDA, so the copy
    overlaps the kernels already queued."""
    non_blocking = device.startswith("cuda")
    return {k: v.to(device, non_blocking=non_blocking) for k, v in tensors.items()}


def check_finite(values: torch.Tensor) -> None:
    """A model that produced NaN or infinity fails those jobs instead of storing them."""
    if not bool(torch.isfinite(values).all()):
        raise PermanentFailure("non_finite_output", "the model produced NaN or infinity")


class Staged:
    """``predict`` as ``finish(prepare(...), forward(...))``; subclasses add the stages."""

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> Any:
        """Tokenize a batch (CPU)."""
        raise NotImplementedError

    def forward(self, prepared: Any) -> Any:
        """The device pass."""
        raise NotImplementedError

    def finish(self, prepared: Any, output: Any) -> list[Any]:
        """Results, in order (CPU)."""
        raise NotImplementedError

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """The three stages in a row."""
        del task
        prepared = self.prepare(texts, params)
        return self.finish(prepared, self.forward(prepared))
