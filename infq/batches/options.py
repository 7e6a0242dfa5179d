"""A new batch's completion window and metadata, as the REST API and the CLI take them
(text), checked once for both."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from infq.errors import InvalidInput
from schemas.batches import parse_window


@dataclass(frozen=True)
class BatchOptions:
    """``window_s``: None for no window; ``metadata``: the caller's JSON object."""

    window_s: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, *, completion_window: str | None, metadata: str | None) -> BatchOptions:
        """:class:`InvalidInput` (a 422, exit 4) saying which is malformed and why."""
        window_s = None
        if completion_window is not None:
            try:
                window_s = parse_window(completion_window)
            except ValueError as e:
                raise InvalidInput(f"completion_window: {e}") from e
        meta: Any = {}
        if metadata is not None:
            try:
                meta = orjson.loads(metadata)
            except orjson.JSONDecodeError as e:
                raise InvalidInput(f"metadata: not JSON ({e})") from e
            if not isinstance(meta, dict):
                raise InvalidInput("metadata: must be a JSON object")
        return cls(window_s, meta)

    def expires_at(self) -> datetime | None:
        """When the window ends, counted from now."""
        if self.window_s is None:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.window_s)

    def digest(self, *, model: str, webhook_url: str | None, body: Iterable[bytes]) -> str:
        """The SHA-256 of a submission: its options, model, webhook and body (given in
        pieces, so a file is hashed as it is read). The same submission sent again under
        its batch id is a retry; anything else under that id is a conflict."""
        head = {"model": model, "webhook_url": webhook_url, "window_s": self.window_s,
                "metadata": self.metadata}  # fmt: skip
        sha = hashlib.sha256(orjson.dumps(head, option=orjson.OPT_SORT_KEYS) + b"\n")
        for piece in body:
            sha.update(piece)
        return sha.hexdigest()
