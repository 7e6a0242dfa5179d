"""The lowest-priority settings source: service URLs the local stack recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from infq.settings.services import STACK_FILE_NAME, Environment


class StackFileSource(PydanticBaseSettingsSource):
    """Reads service URLs recorded by ``infq stack up``; lowest priority."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        *,
        init: PydanticBaseSettingsSource,
        env: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init = init
        self._env = env

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: values are produced all at once by ``__call__``."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        given = {**self._env(), **self._init()}
        # Production never falls back to a local stack someone left on the machine.
        if str(given.get("environment", Environment.LOCAL)) == Environment.PRODUCTION.value:
            return {}
        path = Path(given.get("stack_dir", ".infq")) / STACK_FILE_NAME
        if not path.is_file():
            return {}
        try:
            recorded = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        urls = recorded.get("urls", {})
        return {k: v for k, v in urls.items() if k in self.settings_cls.model_fields}
