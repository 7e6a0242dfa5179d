"""A custom model that misbehaves on purpose, by what each text starts with, for the
fault tests (declared in a catalogue file, as a user's model would be):

* ``intkeys`` — a dict with integer keys (JSON has only string keys);
* ``nul`` — a small result carrying U+0000 (Postgres' jsonb refuses it);
* ``set`` — a Python set (no JSON type);
* ``big`` — a result over the inline limit (it goes to S3);
* ``crash`` — kills its own process (as a segfault in a native library would);
* ``tokenkill`` — kills its own process while its tokens are counted, on arrival,
  before any claim (as a segfault in a native tokenizer would);
* ``hang`` — never returns (well: after an hour);
* ``panic`` — raises a ``BaseException`` (as a Rust panic in tokenizers surfaces);
* anything else — ``{"echo": text}``.

The process-level kinds act on the whole batch, before any result: the batch's other
jobs are the neighbours such an input takes down with it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import Any


class Panic(BaseException):
    """Not an Exception: what ``except Exception`` lets through."""


class Faulty:
    """See the module docstring."""

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = device

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """One result per text, misbehaving as its first word says."""
        del task, params
        kinds = {text.split(" ", 1)[0] for text in texts}
        if "crash" in kinds:
            os.kill(os.getpid(), signal.SIGKILL)
        if "hang" in kinds:
            time.sleep(3600)
        if "panic" in kinds:
            raise Panic("a native library gave up")
        return [self._one(text) for text in texts]

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Words per text, or the process killed for a ``tokenkill`` text among them."""
        if any(text.split(" ", 1)[0] == "tokenkill" for text in texts):
            os.kill(os.getpid(), signal.SIGKILL)
        return [len(text.split()) for text in texts]

    def _one(self, text: str) -> Any:
        kind = text.split(" ", 1)[0]
        if kind == "intkeys":
            return {0: "negative", 1: "positive"}
        if kind == "nul":
            return {"text": "a\x00b"}
        if kind == "set":
            return {"labels": {"a", "b"}}
        if kind == "big":
            return {"text": text, "pad": "x" * 4096}
        return {"echo": text}


def build(*, device: str = "cpu") -> Faulty:
    """The factory the catalogue names."""
    return Faulty(device=device)
