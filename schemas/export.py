"""Writes the JSON Schema files of the wire contract (``python -m schemas.export``).

The files are checked in so producers in any language can validate against them; a
test fails when a model changes and the files were not exported again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.batches import BatchCompletedEvent, BatchSeal
from schemas.events import CompletionEvent, DeadLetter
from schemas.jobs import JobRequest

SCHEMA_DIR = Path(__file__).parent / "json"
EXPORTS: dict[str, type[BaseModel]] = {
    "job-request.v1.schema.json": JobRequest,
    "completion-event.v1.schema.json": CompletionEvent,
    "dead-letter.v1.schema.json": DeadLetter,
    "batch-seal.v1.schema.json": BatchSeal,
    "batch-completed-event.v1.schema.json": BatchCompletedEvent,
}


def render(model: type[BaseModel]) -> str:
    """The JSON Schema of one model as stable, pretty text."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **model.model_json_schema(mode="validation"),
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write every schema file; print what changed."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, model in EXPORTS.items():
        path = SCHEMA_DIR / name
        text = render(model)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
