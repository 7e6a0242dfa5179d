"""Where infq runs and the services it talks to.

Service URLs that are unset fall back to what ``infq stack up`` recorded (see
:class:`infq.settings.sources.StackFileSource`), so a local checkout needs no
configuration; production refuses to start without them instead.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator

STACK_FILE_NAME = "stack.json"
# Without these a process cannot do anything, so production names every one missing.
REQUIRED_IN_PRODUCTION = ("kafka_bootstrap", "database_url", "broker_url")


class Environment(StrEnum):
    """Where infq runs; production refuses the local stack's unsafe defaults."""

    LOCAL = "local"
    PRODUCTION = "production"


class ServiceSettings(BaseModel):
    """Services: the environment, and the URLs of Kafka, Postgres, Redis and S3."""

    environment: Environment = Field(
        default=Environment.LOCAL,
        description="`production` refuses to run without explicit service URLs "
        "(`INFQ_KAFKA_BOOTSTRAP`, `INFQ_DATABASE_URL`, `INFQ_BROKER_URL`) and never reads "
        "the local stack's `stack.json`.",
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers (unset: the local stack's)."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. `postgresql+psycopg://u:p@host/infq` "
        "(unset: the local stack's).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker (Redis), e.g. `redis://host:6379/0` (unset: the local stack's).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint (unset: the local stack's, else AWS's own).",
    )
    s3_bucket: str = Field(default="infq-results", description="Bucket for result payloads.")
    s3_region: str = Field(default="us-east-1", description="Region of the S3 bucket.")
    s3_access_key_id: str | None = Field(
        default=None,
        description="S3 credentials (unset: the local stack's, else boto3's credential chain).",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="The secret of `INFQ_S3_ACCESS_KEY_ID`."
    )

    # Server-side bounds on every Postgres session infq opens (infq/db/session.py).
    db_statement_timeout_s: float = Field(
        default=300.0, ge=0, description="Postgres `statement_timeout` of infq's sessions."
    )
    db_lock_timeout_s: float = Field(
        default=30.0,
        ge=0,
        description="Postgres `lock_timeout`: a statement waiting longer for a row lock "
        "fails and is retried (0: waits forever).",
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description="Postgres ends a session of infq's idle in a transaction this long (a "
        "host that died mid-transaction), releasing its locks (0: never). With PgBouncer "
        "in transaction mode set all three as role defaults and these to 0.",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        # A production process that fell back to defaults would talk to nothing useful.
        if self.environment is Environment.PRODUCTION:
            missing = [name for name in REQUIRED_IN_PRODUCTION if getattr(self, name) is None]
            if missing:
                names = ", ".join(f"INFQ_{n.upper()}" for n in missing)
                raise ValueError(f"production needs explicit service URLs: set {names}")
        return self


class LocalStackSettings(BaseModel):
    """Local stack: where `infq stack up` keeps its services, and on which ports."""

    stack_dir: Path = Field(
        default=Path(".infq"),
        description="Where the local stack keeps data, logs and `stack.json`.",
    )
    # 0 picks a free port at first start and keeps it afterwards, so two checkouts on one
    # machine do not collide.
    stack_kafka_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Fixed local Kafka port; 0: pick a free one at first start, keep it.",
    )
    stack_postgres_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Fixed local Postgres port; 0: pick a free one at first start, keep it.",
    )
    stack_redis_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Fixed local Redis port; 0: pick a free one at first start, keep it.",
    )
    stack_s3_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Fixed local S3 port; 0: pick a free one at first start, keep it.",
    )

    @property
    def stack_file(self) -> Path:
        """Where the local stack records its services."""
        return self.stack_dir / STACK_FILE_NAME
