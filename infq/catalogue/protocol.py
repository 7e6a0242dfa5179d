"""The model protocol: what infq calls on a loaded model. Torch-free, so user code and
infq's own adapters share one documented contract.

A model only has to implement :meth:`Model.predict`. infq's adapters also split it into
stages (:class:`StagedModel`), so the worker can overlap one batch's tokenization and
decoding with another's forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Model(Protocol):
    """A loaded model: one call computes a whole batch, one result per input, in order.

    ``task`` is the catalogue entry's task, ``params`` the job's validated params (every
    job of a call shares them). Results must be JSON-able (dicts, lists, numbers,
    strings) or numpy arrays. Raising :class:`infq.errors.PermanentFailure` fails the
    jobs with its code; any other exception makes the worker split the batch to find
    the inputs that fail, so one bad input never fails its neighbours.
    """

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """Results for ``texts``, in order."""
        ...


@runtime_checkable
class TokenCounting(Protocol):
    """Optional: token lengths, for token-budget batching and metrics."""

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model reads for each text (after truncation, before padding)."""
        ...


@runtime_checkable
class StagedModel(Protocol):
    """A model split into CPU stages around the device pass.

    ``predict(task, texts, params) == finish(prepare(texts, params), forward(prepared))``.
    ``prepare`` and ``finish`` do no device work; ``forward`` does nothing else.
    """

    def prepare(self, texts: Sequence[str], params: dict[str, Any]) -> Any:
        """Tokenize (and truncate or reject) a batch."""
        ...

    def forward(self, prepared: Any) -> Any:
        """The device pass; returns host-side tensors or arrays."""
        ...

    def finish(self, prepared: Any, output: Any) -> list[Any]:
        """One JSON-able result per input, in order."""
        ...
