"""Where a revision's weights are: the folder a ``path`` or ``package`` source names.

Torch-free, so the dispatcher can read a tokenizer file from the same folder a worker
loads the model from.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from infq.catalogue.entries import Revision
from infq.errors import ConfigurationError


def weights_folder(revision: Revision, *, where: str) -> Path | None:
    """The folder a ``path`` or ``package`` source names (None for code sources)."""
    if revision.path:
        folder = Path(revision.path).expanduser()
        if not folder.is_dir():
            raise ConfigurationError(f"model catalogue: {where}: path {folder} is not a folder")
        return folder
    if revision.package:
        try:
            module = importlib.import_module(revision.package)
        except ImportError as e:
            raise ConfigurationError(
                f"model catalogue: {where}: package {revision.package!r} is not installed ({e})"
            ) from None
        getter = getattr(module, "get_model_path", None)
        folder = Path(getter()) if callable(getter) else Path(str(module.__file__)).parent
        if not folder.is_dir():
            raise ConfigurationError(f"model catalogue: {where}: package folder {folder} is gone")
        return folder
    return None
