"""The catalogue file's schema: what a team declares about a model, validated.

Pure pydantic, no torch and no imports of user code: the dispatcher validates jobs
against these entries, and only a worker turns a revision's source into a model.
A TOML file (``INFQ_MODELS_FILE``) holds ``[[models]]`` tables; each error names the
entry and the field (see :func:`infq.catalogue.catalogue.load_file`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME = r"^[A-Za-z0-9][A-Za-z0-9._/:+-]{0,127}$"
# '@' separates a model from a revision in lane names (``model@revision``).
REVISION = r"^[A-Za-z0-9][A-Za-z0-9._:+=-]{0,127}$"


class Task(StrEnum):
    """What a model computes; each has a worker adapter and a params schema."""

    EMBED = "embed"
    CLASSIFY = "classify"
    GENERATE = "generate"
    CUSTOM = "custom"
    ECHO = "echo"  # the built-in pipeline-test model


class DType(StrEnum):
    """Precision a revision runs in; ``int8`` is dynamic quantization (CPU only)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    INT8 = "int8"


class Batching(BaseModel):
    """Per-model batching; unset fields fall back to the worker's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int | None = Field(default=None, ge=1, le=4096)
    # Padded tokens in one forward pass (longest input times batch size): long inputs make
    # smaller batches, so memory and latency stay bounded whatever the lengths.
    max_batch_tokens: int | None = Field(default=None, ge=1)
    max_wait_ms: int | None = Field(default=None, ge=1, le=60_000)


class Revision(BaseModel):
    """One version of a model: its own source and precision.

    Exactly one source: ``path`` (a local folder saved by transformers), ``package`` (an
    installed Python package shipping the weights: its ``get_model_path()``, else its
    own folder), ``factory`` (``module:callable`` building a custom model) or
    ``entry_point`` (a name in the ``infq.models`` entry-point group).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=REVISION)
    path: str | None = None
    package: str | None = None
    factory: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    entry_point: str | None = None
    dtype: DType = DType.FLOAT32

    @model_validator(mode="after")
    def _one_source(self) -> Revision:
        given = [k for k in ("path", "package", "factory", "entry_point") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one source: path, package, factory or entry_point"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def source(self) -> str:
        """The source, as written (for listings and logs)."""
        for kind in ("path", "package", "factory", "entry_point"):
            value = getattr(self, kind)
            if value:
                return f"{kind}={value}"
        return "?"

    @property
    def computed_by(self) -> str:
        """The identity filed with results and in cache keys: the name, plus the dtype
        unless float32, so a catalogue edit of the precision never serves old results."""
        return self.name if self.dtype is DType.FLOAT32 else f"{self.name}/{self.dtype.value}"


class Entry(BaseModel):
    """One ``[[models]]`` table.

    A model with a single version may give its source and ``revision``/``dtype`` at the
    top level instead of a ``[[models.revisions]]`` list.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    aliases: tuple[str, ...] = ()
    task: Task
    revisions: tuple[Revision, ...] = ()
    # Share of new jobs per revision until `infq models route` stores one in Postgres.
    route: dict[str, int] = Field(default_factory=dict)
    batching: Batching = Batching()
    max_input_tokens: int | None = Field(default=None, ge=1)
    on_long_input: Literal["truncate", "reject"] = "truncate"
    # Longest one forward pass may take (unset: INFQ_WORKER_COMPUTE_DEADLINE_S).
    compute_deadline_s: float | None = Field(default=None, gt=0)
    # generate: the most new tokens a job may ask for (and the default).
    max_new_tokens: int = Field(default=128, ge=1, le=32_768)
    default_params: dict[str, Any] = Field(default_factory=dict)
    # Loader options passed to the adapter (custom factories receive them as keywords).
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _single_revision_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        top = {k: data[k] for k in ("path", "package", "factory", "entry_point") if k in data}
        if not top:
            if "revision" in data or "dtype" in data:
                raise ValueError("revision and dtype at the top level need a source beside them")
            return data
        if data.get("revisions"):
            raise ValueError("give sources either at the top level or under revisions, not both")
        rest = {k: v for k, v in data.items() if k not in top and k not in ("revision", "dtype")}
        revision = {"name": data.get("revision", "1"), **top}
        if "dtype" in data:
            revision["dtype"] = data["dtype"]
        return {**rest, "revisions": [revision]}

    @model_validator(mode="after")
    def _coherent(self) -> Entry:
        if not self.revisions:
            raise ValueError("a model needs at least one revision (a source)")
        names = [r.name for r in self.revisions]
        if len(set(names)) != len(names):
            raise ValueError(f"revision names repeat: {names}")
        unknown = sorted(set(self.route) - set(names))
        if unknown:
            raise ValueError(f"route names unknown revisions {unknown}; revisions: {names}")
        if self.route and (any(w < 0 for w in self.route.values()) or not sum(self.route.values())):
            raise ValueError("route shares must be >= 0 and not all 0")
        for alias in self.aliases:
            if not re.match(NAME, alias):
                raise ValueError(f"alias {alias!r} is not a valid model name")
        return self

    def revision(self, name: str) -> Revision:
        """The revision called ``name`` (KeyError if none)."""
        for r in self.revisions:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def default_route(self) -> dict[str, int]:
        """The route before any is stored: the declared one, else all to the first."""
        return dict(self.route) if self.route else {self.revisions[0].name: 100}


class CatalogueFile(BaseModel):
    """The whole TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Keep the built-in models (MiniLM, echo) beside the file's own.
    include_builtin: bool = True
    models: tuple[Entry, ...] = ()
