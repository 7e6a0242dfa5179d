"""``echo``: a tiny model for pipeline tests. Fast, deterministic, no torch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from infq.errors import PermanentFailure


class EchoModel:
    """Returns each text (optionally upper-cased) and its length.

    Built by the catalogue's ``factory`` source like any custom model (it takes the
    entry's options as keywords and ignores them).
    """

    def __init__(self, **options: Any) -> None:
        del options

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """One small dict per text; ``fail`` raises for the whole call, like a real error;
        ``delay_ms`` holds the batch that long, like a forward pass (chaos tests kill
        workers mid-batch with it)."""
        if params.get("delay_ms"):
            time.sleep(int(params["delay_ms"]) / 1000)
        if params.get("fail"):
            raise PermanentFailure("echo_fail", "echo was asked to fail (params.fail=true)")
        upper = bool(params.get("upper"))
        return [{"text": t.upper() if upper else t, "length": len(t)} for t in texts]
