"""Chat messages as one prompt, through a revision's own chat template.

A chat model's ``tokenizer_config.json`` carries a Jinja template (``chat_template``)
that turns ``[{"role", "content"}, ...]`` into the text the model was trained on. The
OpenAI surface renders it at intake, torch-free, the way transformers'
``apply_chat_template`` does (a sandboxed Jinja environment with ``trim_blocks`` and
``lstrip_blocks``, ``raise_exception``, ``add_generation_prompt=True``, the tokenizer's
special tokens), so a ``generate`` job receives the same prompt a transformers user
would have built. Templates load lazily, once per revision, from the folder a worker
loads the model from (:func:`infq.catalogue.sources.weights_folder`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from infq.catalogue.entries import Entry, Revision
from infq.catalogue.sources import weights_folder
from infq.errors import ConfigurationError, RejectedRecord

# Special tokens a template may refer to by name, as transformers passes them.
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


class TemplateError(ValueError):
    """A template that cannot render these messages (its own ``raise_exception`` or a
    Jinja error); the message says why."""


def render(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    special_tokens: Mapping[str, str] | None = None,
) -> str:
    """``messages`` through ``template`` with a generation prompt, as transformers does.

    Pure: the template is compiled in a sandbox, so a model folder cannot run code.
    """

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False,
                                                                  indent=indent)  # fmt: skip
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now(UTC).strftime(fmt)
    try:
        compiled = env.from_string(template)
        return compiled.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=True,
            **dict(special_tokens or {}),
        )
    except jinja2.TemplateError as e:
        raise TemplateError(f"the model's chat template failed: {e}") from e


class ChatTemplates:
    """Each revision's chat template and special tokens, read once from its folder."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str], tuple[str, dict[str, str]] | None] = {}
        self._lock = threading.Lock()

    def prompt(
        self, entry: Entry, revision: Revision, messages: Sequence[Mapping[str, Any]]
    ) -> str:
        """The rendered prompt; :class:`RejectedRecord` when the revision has no chat
        template (``chat_template_missing``) or it refuses the messages (``invalid_value``)."""
        found = self._template(entry, revision)
        if found is None:
            raise RejectedRecord(
                "chat_template_missing",
                f"model {entry.name!r} (revision {revision.name!r}) has no chat template in "
                "its tokenizer_config.json; send /v1/completions lines with a prompt instead",
                field="messages",
            )
        template, tokens = found
        try:
            return render(template, messages, special_tokens=tokens)
        except TemplateError as e:
            raise RejectedRecord("invalid_value", str(e), field="messages") from e

    def _template(self, entry: Entry, revision: Revision) -> tuple[str, dict[str, str]] | None:
        key = (entry.name, revision.name)
        with self._lock:
            if key not in self._found:
                self._found[key] = _load(entry, revision)
            return self._found[key]


def _load(entry: Entry, revision: Revision) -> tuple[str, dict[str, str]] | None:
    """(template, special tokens) from the revision's folder, or None without one.

    transformers writes a template into ``tokenizer_config.json``; recent versions save
    it to ``chat_template.jinja`` beside it instead, so both are read.
    """
    where = f"models {entry.name!r} revision {revision.name!r}"
    try:
        folder = weights_folder(revision, where=where)
    except ConfigurationError:
        return None
    if folder is None:
        return None
    config: dict[str, Any] = {}
    path = folder / "tokenizer_config.json"
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
    template = config.get("chat_template")
    if isinstance(template, list):
        # Named templates (``[{"name", "template"}]``): the default one serves chat.
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    jinja = folder / "chat_template.jinja"
    if not isinstance(template, str) and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    if not isinstance(template, str) or not template:
        return None
    return template, special_tokens(config)


def special_tokens(config: Mapping[str, Any]) -> dict[str, str]:
    """The special tokens of a tokenizer config as strings (a saved ``AddedToken`` is a
    dict with ``content``)."""
    tokens: dict[str, str] = {}
    for name in SPECIAL_TOKENS:
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[name] = value
    return tokens
