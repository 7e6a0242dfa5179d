"""Typed settings, read once in an entry point and passed down.

Every value comes from an ``INFQ_*`` environment variable. Service URLs that are not
set fall back to what ``infq stack up`` recorded in ``<stack_dir>/stack.json``, so a
local checkout needs no configuration while production points each service at an
external URL.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from infq.cache.key import CacheScope
from infq.errors import ConfigurationError, UnknownSetting

STACK_FILE_NAME = "stack.json"
ENV_PREFIX = "INFQ_"
# INFQ_* variables that something other than Settings reads. Every other INFQ_* variable
# is refused as a typo, so add a name here (saying who reads it) before reading one
# elsewhere. None today: the stack, test and benchmark helpers all go through Settings.
EXTERNAL_VARIABLES: frozenset[str] = frozenset()
# How alike a misspelt name must be to a real one to be suggested (difflib ratio).
SUGGESTION_CUTOFF = 0.75
# Values of these settings are never echoed in an error (they may hold credentials).
_UNSHOWN = ("url", "secret", "password", "key")


class Environment(StrEnum):
    """Where infq runs; production refuses the local stack's unsafe defaults."""

    LOCAL = "local"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All infq settings. Names carry their units."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    environment: Environment = Environment.LOCAL
    stack_dir: Path = Path(".infq")
    # Local stack ports; 0 picks a free port at first start and keeps it afterwards.
    stack_kafka_port: int = Field(default=0, ge=0, le=65535)
    stack_postgres_port: int = Field(default=0, ge=0, le=65535)
    stack_redis_port: int = Field(default=0, ge=0, le=65535)
    stack_s3_port: int = Field(default=0, ge=0, le=65535)

    # --- service URLs (None: use the local stack's, see module docstring) ---
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    broker_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str = "infq-results"
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    # --- Kafka contract ---
    jobs_topic: str = "infq.jobs"
    results_topic: str = "infq.results"
    dlq_topic: str = "infq.jobs.dlq"
    batches_topic: str = "infq.batches"
    topic_partitions: int = Field(default=4, ge=1)
    consumer_group: str = "infq-dispatcher"
    # Short: Tansu answers JoinGroup after about half the session timeout.
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    poll_max_records: int = Field(default=500, ge=1)
    poll_timeout_ms: int = Field(default=200, ge=1)
    # A trickle of records makes a round per record or two, each with its transaction,
    # offset commit, scheduler tick and Celery message. Waiting this long after a round
    # that was not a full poll lets records gather (a job waits at most this much
    # longer; 0: no wait).
    dispatch_linger_ms: int = Field(
        default=20, ge=0, description="Shortest time between two dispatcher rounds."
    )

    # --- limits on what a job may be ---
    max_input_bytes: int = Field(default=64 * 1024, ge=1)
    max_record_bytes: int = Field(default=1024 * 1024, ge=1)

    # --- batching ---
    max_batch_size: int = Field(default=64, ge=1, description="Jobs in one model forward pass.")
    max_wait_ms: int = Field(default=50, ge=1, description="Longest a job waits for a batch.")
    # One batch per message by default: each message costs both Celery ends about a
    # millisecond of Python, and chunks of 16 cost the echo benchmark a tenth of its rate.
    dispatch_chunk_size: int = Field(
        default=64, ge=1, description="Jobs carried by one Celery message."
    )

    # --- results and the result cache ---
    inline_result_max_bytes: int = Field(default=1024, ge=0)
    cache_scope: CacheScope = CacheScope.TENANT
    cache_retention_days: float = Field(default=30.0, gt=0)
    # The model catalogue (TOML); the built-in models alone when unset.
    models_file: Path | None = None
    # Rename a single-revision model's revision (e.g. {"echo": "echo-2"}): results
    # cached under another revision are never served.
    model_revisions: dict[str, str] = Field(default_factory=dict)

    # --- worker ---
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    worker_concurrency: int = Field(default=1, ge=1)
    # Redis redelivers an unacknowledged message after this long. Postgres leases, not
    # this, bring a dead worker's jobs back; it only bounds stray duplicate messages.
    visibility_timeout_s: int = Field(default=300, ge=10)

    # --- scheduler: Postgres holds the backlog, Redis a small window under leases ---
    lease_s: float = Field(
        default=15.0, ge=2, description="A job held by a silent worker returns after this."
    )
    heartbeat_interval_s: float = Field(
        default=3.0, gt=0, description="How often a worker renews its process row and leases."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Workers lost on one job before it fails (worker_lost)."
    )
    # Three: one batch per worker stage (prepare, forward, finish), so a pipelined
    # worker always has the next batch in hand when the device frees.
    window_batches: float = Field(
        default=3.0, gt=0, description="Jobs handed out per live worker slot, in batches."
    )
    scheduler_interval_ms: int = Field(default=50, ge=5, description="Scheduler poll period.")
    maintenance_interval_s: float = Field(
        default=1.0, gt=0, description="Lease expiry and outbox sweep period."
    )
    outbox_grace_s: float = Field(
        default=10.0,
        gt=0,
        description="Unconfirmed events and deliveries older than this are re-driven.",
    )
    scheduler_in_dispatcher: bool = Field(
        default=True, description="Run the scheduler loop inside each dispatcher process."
    )

    # --- operations: metrics, Flower, the autoscaler ---
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port of this process's /metrics (0: off)."
    )
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_user: str = "infq"
    # None locally: a password is generated once and kept in <stack_dir>/flower-password.
    flower_password: SecretStr | None = None
    worker_grace_s: float = Field(
        default=60.0, gt=0, description="Longest a stopping worker may take to drain."
    )
    autoscale_min_workers: int = Field(default=0, ge=0)
    autoscale_max_workers: int = Field(default=2, ge=1)
    autoscale_target_work_s: float = Field(
        default=30.0, gt=0, description="Seconds of work (at the measured rate) per worker."
    )
    autoscale_idle_s: float = Field(
        default=60.0, ge=0, description="No work for this long scales down to zero."
    )
    autoscale_stabilization_s: float = Field(
        default=30.0, ge=0, description="Scale down only to the highest need seen this long."
    )
    autoscale_max_step_down: int = Field(default=1, ge=1, description="Workers per decision.")
    autoscale_interval_s: float = Field(default=1.0, gt=0, description="Decision period.")
    autoscale_default_rate_jobs_per_s: float = Field(
        default=20.0, gt=0, description="A worker's rate assumed until one is measured."
    )

    # --- webhooks ---
    # Hosts or CIDRs callbacks may reach although private (e.g. ["10.0.0.0/8"]).
    webhook_allow: list[str] = Field(default_factory=list)
    webhook_max_attempts: int = Field(default=6, ge=1)
    webhook_base_delay_s: float = Field(default=1.0, gt=0)
    webhook_max_delay_s: float = Field(default=60.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1)
    result_url_expires_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # --- REST API ---
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_max_jobs_per_request: int = Field(default=1000, ge=1)
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # The OpenAI-compatible surface (/openai/v1): OpenAI's own limits by default.
    openai_max_file_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    openai_max_batch_lines: int = Field(default=50_000, ge=1)

    # --- tenants: the limits a new tenant starts with (unset: unlimited) ---
    tenant_max_queued: int | None = Field(
        default=None, ge=0, description="Jobs a new tenant may have queued at once."
    )
    tenant_rate_per_s: float | None = Field(
        default=None, gt=0, description="Jobs a new tenant may submit per second (REST)."
    )
    tenant_burst_s: float = Field(
        default=1.0, gt=0, description="Seconds of its rate a tenant may submit at once."
    )

    log_level: str = "INFO"

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
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            missing = [
                name
                for name in ("kafka_bootstrap", "database_url", "broker_url")
                if getattr(self, name) is None
            ]
            if missing:
                names = ", ".join(f"INFQ_{n.upper()}" for n in missing)
                raise ValueError(f"production needs explicit service URLs: set {names}")
        if self.autoscale_min_workers > self.autoscale_max_workers:
            raise ValueError("INFQ_AUTOSCALE_MIN_WORKERS exceeds INFQ_AUTOSCALE_MAX_WORKERS")
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

    @property
    def stack_file(self) -> Path:
        """Where the local stack records its services."""
        return self.stack_dir / STACK_FILE_NAME

    def model_queue(self, lane: str) -> str:
        """The Celery queue that carries jobs for one lane (``model@revision``)."""
        return f"infq.model.{lane}"


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
