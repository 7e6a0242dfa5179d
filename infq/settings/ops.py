"""Operations: what a process exposes (metrics, Flower, logs) and the autoscaler."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator


class ObservabilitySettings(BaseModel):
    """Observability: metrics ports, Flower's address and basic auth, the log level."""

    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="This process's Prometheus `/metrics` port (0: off; a worker's pool "
        "process n serves on port + n; `infq up` assigns ports itself).",
    )
    flower_port: int = Field(default=5555, ge=1, le=65535, description="Flower's port.")
    flower_user: str = Field(default="infq", description="Flower's basic-auth user.")
    flower_password: SecretStr | None = Field(
        default=None,
        description="Flower's basic-auth password; unset locally: generated once into "
        "`$INFQ_STACK_DIR/flower-password`; production requires it.",
    )
    log_level: str = Field(
        default="INFO",
        description="Log level of every infq process (its own logs, Celery's and uvicorn's).",
    )


class AutoscaleSettings(BaseModel):
    """Autoscaling: the bounds and pace of the worker pool `infq autoscale` keeps."""

    autoscale_min_workers: int = Field(
        default=0, ge=0, description="Fewest workers of the autoscaled pool (0: scale to zero)."
    )
    autoscale_max_workers: int = Field(
        default=2, ge=1, description="Most workers of the autoscaled pool."
    )
    autoscale_target_work_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds of work per worker, at the rate the workers measure.",
    )
    autoscale_stabilization_s: float = Field(
        default=30.0,
        ge=0,
        description="Scale down only to the highest need seen this long.",
    )
    autoscale_max_step_down: int = Field(
        default=1, ge=1, description="Workers removed per decision at most."
    )
    autoscale_idle_s: float = Field(
        default=60.0,
        ge=0,
        description="One worker stays warm until no work was seen this long.",
    )
    autoscale_interval_s: float = Field(default=1.0, gt=0, description="Decision period.")
    autoscale_default_rate_jobs_per_s: float = Field(
        default=20.0,
        gt=0,
        description="A worker's rate assumed until the workers have measured one.",
    )

    @model_validator(mode="after")
    def _refuse_inverted_bounds(self) -> Self:
        # Each bound is valid alone; only together can they leave no pool size to pick.
        if self.autoscale_min_workers > self.autoscale_max_workers:
            raise ValueError("INFQ_AUTOSCALE_MIN_WORKERS exceeds INFQ_AUTOSCALE_MAX_WORKERS")
        return self
