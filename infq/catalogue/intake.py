"""Refusing over-long inputs at intake, for models whose entry says ``reject``.

A catalogue entry with ``on_long_input = "reject"`` and ``max_input_tokens`` gets its
inputs counted in the dispatcher with the revision's own ``tokenizer.json`` (the Rust
``tokenizers`` library: no torch, no transformers), so a too-long job is ``rejected``
at once with ``input_too_long`` instead of failing later in a worker; the REST API and
the CLI count the same way before they send it (:mod:`infq.catalogue.checks`). Counts include
the special tokens, as the worker's tokenizer does. Where the dispatcher cannot read
the tokenizer (weights only on GPU hosts, a custom model), the worker still refuses the
input, and the job ends ``failed`` with the same code.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from infq.catalogue.entries import Entry, Revision
from infq.catalogue.sources import weights_folder
from infq.errors import ConfigurationError, RejectedRecord

log = logging.getLogger("infq.dispatcher")


class InputLimits:
    """Counts tokens of jobs whose model rejects long inputs; tokenizers load lazily."""

    def __init__(self) -> None:
        self._tokenizers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def check(self, entry: Entry, revision: Revision, text: str) -> None:
        """Raise :class:`RejectedRecord` (``input_too_long``) when ``text`` is too long."""
        limit = entry.max_input_tokens
        if entry.on_long_input != "reject" or limit is None:
            return
        tokenizer = self._tokenizer(entry, revision)
        if tokenizer is None:
            return
        count = len(tokenizer.encode(text).ids)
        if count > limit:
            raise RejectedRecord(
                "input_too_long",
                f"{count} tokens; model {entry.name!r} accepts at most {limit} "
                "(its catalogue entry says on_long_input = 'reject')",
                field="input.text",
            )

    def count(self, entry: Entry, revision: Revision, text: str) -> int | None:
        """Tokens of ``text`` with the revision's tokenizer, special tokens included
        (the ``usage`` of an OpenAI embeddings response); None without a tokenizer."""
        tokenizer = self._tokenizer(entry, revision)
        if tokenizer is None:
            return None
        return len(tokenizer.encode(text).ids)

    def _tokenizer(self, entry: Entry, revision: Revision) -> Any:
        key = (entry.name, revision.name)
        with self._lock:
            if key not in self._tokenizers:
                self._tokenizers[key] = _load(entry, revision)
            return self._tokenizers[key]


def _load(entry: Entry, revision: Revision) -> Any:
    from tokenizers import Tokenizer

    where = f"models {entry.name!r} revision {revision.name!r}"
    try:
        folder = weights_folder(revision, where=where)
    except ConfigurationError as e:
        log.warning("%s; long inputs are refused by the worker instead", e)
        return None
    path = folder / "tokenizer.json" if folder is not None else None
    if path is None or not path.is_file():
        log.warning("%s has no tokenizer.json; long inputs are refused by the worker", where)
        return None
    try:
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.no_truncation()
        tokenizer.no_padding()
    except Exception as e:
        # A file the Rust tokenizer cannot read must not stop intake (every round would
        # fail on it): the worker's transformers tokenizer judges those inputs instead.
        log.warning("%s: cannot read %s (%s); long inputs are refused by the worker",
                    where, path, e)  # fmt: skip
        return None
    return tokenizer
