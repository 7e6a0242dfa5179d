"""The edges infq answers at: the REST API, webhooks it sends, and tenants' limits."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ApiSettings(BaseModel):
    """REST API: its address and the largest requests it takes, OpenAI surface included."""

    api_host: str = Field(default="127.0.0.1", description="REST API address.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="REST API port.")
    api_max_jobs_per_request: int = Field(
        default=1000, ge=1, description="Jobs per `POST /v1/jobs` or batch upload."
    )
    api_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body (but an OpenAI file upload), 413 as it streams in.",
    )
    api_health_detail: bool = Field(
        default=False,
        description="`/healthz` shows why each service is down (error text names hosts "
        "and versions; only where the API's callers are operators). Off: `ok`/`down`; "
        "the reason is logged.",
    )
    # The OpenAI-compatible surface (/openai/v1): OpenAI's own limits by default.
    openai_max_file_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1024,
        description="Largest file `POST /openai/v1/files` accepts (400 `file_too_large` above).",
    )
    openai_max_batch_lines: int = Field(
        default=50_000,
        ge=1,
        description="Requests in one OpenAI batch input file (400 "
        "`too_many_requests_in_batch` above).",
    )


class WebhookSettings(BaseModel):
    """Webhooks: which private hosts callbacks may reach, retries, timeouts, threads."""

    webhook_allow: list[str] = Field(
        default_factory=list,
        description="JSON list of hosts/CIDRs callbacks may reach although private, e.g. "
        '`["10.0.0.0/8", "hooks.internal"]`.',
    )
    webhook_max_attempts: int = Field(
        default=6, ge=1, description="Attempts before a delivery is dead."
    )
    webhook_base_delay_s: float = Field(
        default=1.0, gt=0, description="Lower bound of the retry backoff (full jitter)."
    )
    webhook_max_delay_s: float = Field(
        default=60.0, gt=0, description="Upper bound of the retry backoff (full jitter)."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one attempt.")
    webhook_concurrency: int = Field(
        default=8,
        ge=1,
        description="Notifier threads (when `infq notifier` is given no `--concurrency`).",
    )


class TenantSettings(BaseModel):
    """Tenants: the limits a new tenant starts with (unset: unlimited)."""

    tenant_max_queued: int | None = Field(
        default=None,
        ge=0,
        description="Max queued jobs a new tenant starts with (`infq tenants create`, and "
        "`default` at its first `infq init`); unset: unlimited.",
    )
    tenant_rate_per_s: float | None = Field(
        default=None,
        gt=0,
        description="Jobs per second a new tenant may submit over REST; unset: unlimited.",
    )
    tenant_burst_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds of its rate a tenant may submit at once (at least one job).",
    )
