"""From a catalogue lane to a loaded model: find the source, pick the task's adapter.

Only a worker calls this, and only for the lanes it serves, so torch and a model's
weights are loaded where they run and nowhere else. Every failure names the lane and
the field of its catalogue entry.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from importlib.metadata import entry_points
from typing import Any

from infq.catalogue.catalogue import Lane
from infq.catalogue.entries import Revision, Task
from infq.catalogue.protocol import Model
from infq.catalogue.sources import weights_folder
from infq.errors import ConfigurationError

log = logging.getLogger("infq.worker")

ENTRY_POINT_GROUP = "infq.models"

ADAPTERS = {
    Task.EMBED: "workers.adapters.embed",
    Task.CLASSIFY: "workers.adapters.classify",
    Task.GENERATE: "workers.adapters.generate",
}


def factory_of(revision: Revision, *, where: str) -> Any:
    """The callable a ``factory`` or ``entry_point`` source names."""
    if revision.entry_point:
        found = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == revision.entry_point]
        if not found:
            raise ConfigurationError(
                f"model catalogue: {where}: entry_point {revision.entry_point!r} is not "
                f"registered in the {ENTRY_POINT_GROUP!r} group of any installed package"
            )
        return found[0].load()
    module_name, _, attr = str(revision.factory).partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise ConfigurationError(
            f"model catalogue: {where}: factory {revision.factory!r} cannot be imported ({e})"
        ) from None
    return target


def load_lane(lane: Lane, *, device: str) -> Model:
    """Build the model one lane serves (heavy: once per worker process)."""
    entry, revision = lane.entry, lane.revision
    where = f"models {entry.name!r} revision {revision.name!r}"
    if revision.factory or revision.entry_point:
        factory = factory_of(revision, where=where)
        options = dict(entry.options)
        if "device" in inspect.signature(factory).parameters:
            options["device"] = device
        model = factory(**options)
        if not isinstance(model, Model):
            raise ConfigurationError(
                f"model catalogue: {where}: the factory returned {type(model).__name__}, "
                "which has no predict(task, texts, params) method"
            )
        return model
    if entry.task not in ADAPTERS:
        raise ConfigurationError(
            f"model catalogue: {where}: task {entry.task.value!r} needs a factory or "
            "entry_point source (custom code), not a weights folder"
        )
    from workers.adapters.base import LoadSpec, resolve_device

    spec = LoadSpec(
        model=entry.name,
        revision=revision.name,
        folder=weights_folder(revision, where=where),
        dtype=revision.dtype,
        device=resolve_device(device),
        max_input_tokens=entry.max_input_tokens,
        on_long_input=entry.on_long_input,
        max_new_tokens=entry.max_new_tokens,
        options=dict(entry.options),
    )
    adapter = importlib.import_module(ADAPTERS[entry.task])
    loaded: Model = adapter.load(spec)
    return loaded
