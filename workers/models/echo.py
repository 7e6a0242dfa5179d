"""``echo``: a tiny model for pipeline tests. Fast, deterministic, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infq.errors import PermanentFailure


class EchoModel:
    """Returns each text (optionally upper-cased) and its length."""

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """One small dict per text; ``fail`` raises for the whole call, like a real error."""
        if params.get("fail"):
            raise PermanentFailure("echo_fail", "echo was asked to fail (params.fail=true)")
        upper = bool(params.get("upper"))
        return [{"text": t.upper() if upper else t, "length": len(t)} for t in texts]


def load(*, device: str) -> EchoModel:
    """Loader named by the registry; ``device`` is irrelevant for echo."""
    del device
    return EchoModel()
