"""A custom model for infq: any Python class with ``predict(task, texts, params)``.

Declare it in the catalogue file (``INFQ_MODELS_FILE``)::

    [[models]]
    name = "greeter"
    task = "custom"
    factory = "examples.custom_model:build"   # module:callable, importable by the worker
    revision = "v1"
    options = { greeting = "hello" }          # passed to the factory as keywords

or ship it in a package with an entry point and write ``entry_point = "greeter"``::

    [project.entry-points."infq.models"]
    greeter = "mypackage.models:build"

The factory is called once per worker process, with the entry's ``options`` (and
``device=`` when it takes one). ``predict`` gets a whole batch: texts of jobs that share
the model revision and params, and returns one JSON-able result per text, in order.
Raise :class:`infq.errors.PermanentFailure` to fail jobs with your own error code; any
other exception makes infq split the batch until the failing input stands alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infq.errors import PermanentFailure


class Greeter:
    """Greets each text; ``params.punctuation`` (up to 3 characters) ends the greeting."""

    def __init__(self, *, greeting: str = "hello", device: str = "cpu") -> None:
        self.greeting = greeting
        self.device = device  # a real model would move its weights here

    def predict(self, task: str, texts: Sequence[str], params: dict[str, Any]) -> list[Any]:
        """One result per text, in order."""
        del task
        punctuation = params.get("punctuation", "!")
        if not isinstance(punctuation, str) or len(punctuation) > 3:
            raise PermanentFailure(
                "invalid_params", "params.punctuation must be a string of at most 3 characters"
            )
        return [
            {"greeting": f"{self.greeting}, {text}{punctuation}", "words": len(text.split())}
            for text in texts
        ]


def build(*, greeting: str = "hello", device: str = "cpu") -> Greeter:
    """The factory the catalogue names."""
    return Greeter(greeting=greeting, device=device)
