"""Typed settings, read once in an entry point and passed down.

Every value comes from an ``INFQ_*`` environment variable. Service URLs that are not
set fall back to what ``infq stack up`` recorded in ``<stack_dir>/stack.json``, so a
local checkout needs no configuration while production points each service at an
external URL.

:class:`Settings` is one flat class, so every variable keeps its one ``INFQ_*`` name,
but its fields are declared by concept in the modules beside this one (services,
intake, workers, scheduler, results, retention, ops, edges) and combined here; :data:`GROUPS`
lists them in the order the Configuration page shows them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from infq.errors import ConfigurationError, UnknownSetting
from infq.settings.edges import ApiSettings, TenantSettings, WebhookSettings
from infq.settings.intake import JobLimits, KafkaSettings
from infq.settings.ops import AutoscaleSettings, ObservabilitySettings
from infq.settings.production import Secrets, refusals
from infq.settings.results import CatalogueSettings, ResultSettings
from infq.settings.retention import RetentionSettings
from infq.settings.scheduler import SchedulerSettings
from infq.settings.services import (
    STACK_FILE_NAME,
    Environment,
    LocalStackSettings,
    ServiceSettings,
)
from infq.settings.sources import StackFileSource
from infq.settings.workers import BatchingSettings, WorkerSettings

__all__ = [
    "ENV_PREFIX",
    "EXTERNAL_VARIABLES",
    "GROUPS",
    "STACK_FILE_NAME",
    "Environment",
    "Settings",
    "StackFileSource",
    "explain_invalid",
    "refuse_unknown_variables",
    "variable_names",
]

ENV_PREFIX = "INFQ_"
# INFQ_* variables that something other than Settings reads. Every other INFQ_* variable
# is refused as a typo, so add a name here (saying who reads it) before reading one
# elsewhere. None today: the stack, test and benchmark helpers all go through Settings.
EXTERNAL_VARIABLES: frozenset[str] = frozenset()
# How alike a misspelt name must be to a real one to be suggested (difflib ratio).
SUGGESTION_CUTOFF = 0.75
# Values of these settings are never echoed in an error (they may hold credentials).
_UNSHOWN = ("url", "secret", "password", "key")


class Settings(
    ServiceSettings,
    LocalStackSettings,
    KafkaSettings,
    JobLimits,
    BatchingSettings,
    WorkerSettings,
    SchedulerSettings,
    ResultSettings,
    RetentionSettings,
    CatalogueSettings,
    ApiSettings,
    WebhookSettings,
    TenantSettings,
    ObservabilitySettings,
    AutoscaleSettings,
    BaseSettings,
):
    """All infq settings. Names carry their units."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment wins; the local stack's recorded URLs fill what is left. An
        ``INFQ_*`` variable that names no setting is refused, not ignored."""
        refuse_unknown_variables(os.environ)
        stack = StackFileSource(settings_cls, init=init_settings, env=env_settings)
        return (init_settings, env_settings, stack)

    @model_validator(mode="after")
    def _refuse_published_secrets(self) -> Self:
        # A password printed in a public file passes "a password is set"; production
        # names each such variable (never its value) and does not start.
        if self.environment is not Environment.PRODUCTION:
            return self
        reasons = refusals(
            Secrets(
                database_url=self.database_url,
                broker_url=self.broker_url,
                s3_secret_access_key=_reveal(self.s3_secret_access_key),
                flower_password=_reveal(self.flower_password),
            )
        )
        if reasons:
            raise ValueError("production refuses " + "; ".join(reasons))
        return self

    # --- required accessors: a clear error instead of a None deep inside a client ---
    def require(self, name: str) -> str:
        """The value of a service-URL setting, or a ConfigurationError saying how to set it."""
        value = getattr(self, name)
        if value is None:
            raise ConfigurationError(
                f"INFQ_{name.upper()} is not set and no local stack is recorded in "
                f"{self.stack_file}: run `infq stack up` or set it"
            )
        return str(value)

    @property
    def kafka(self) -> str:
        """Kafka bootstrap servers."""
        return self.require("kafka_bootstrap")

    @property
    def database(self) -> str:
        """SQLAlchemy database URL."""
        return self.require("database_url")

    @property
    def broker(self) -> str:
        """Celery broker URL (Redis)."""
        return self.require("broker_url")


# The field groups Settings is made of, in the order the docs show them: its bases, so
# a new group is added in one place.
GROUPS: tuple[type[BaseModel], ...] = tuple(
    base for base in Settings.__bases__ if base is not BaseSettings
)


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def variable_names() -> list[str]:
    """Every ``INFQ_*`` variable infq reads: one per setting, and the external ones."""
    return sorted({ENV_PREFIX + name.upper() for name in Settings.model_fields}
                  | EXTERNAL_VARIABLES)  # fmt: skip


def refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    """Raise :class:`UnknownSetting` for ``INFQ_*`` names that no setting has.

    pydantic-settings ignores them, so ``INFQ_MAX_BATCH_SIZ=8`` would run with the
    default silently. Names compare case-insensitively, as pydantic-settings reads them.
    """
    known = variable_names()
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )
    if not unknown:
        return
    suggestions = {}
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=SUGGESTION_CUTOFF)
        if close:
            suggestions[name] = close[0]
    raise UnknownSetting(unknown, suggestions)


def explain_invalid(error: ValidationError) -> str | None:
    """One line naming each refused ``INFQ_*`` value and why, or None when ``error`` is
    not about :class:`Settings` (entry points turn it into a configuration error)."""
    if error.title != Settings.__name__:
        return None
    parts = []
    for item in error.errors():
        reason = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:
            parts.append(reason)  # a check across settings names its variables itself
            continue
        field = str(item["loc"][0])
        name = ENV_PREFIX + field.upper()
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown setting {field!r}")
            continue
        value = item.get("input")
        if isinstance(value, str | int | float) and not any(w in field for w in _UNSHOWN):
            name = f"{name}={value}"
        parts.append(f"{name}: {reason}")
    return "; ".join(parts)
