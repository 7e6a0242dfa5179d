"""Results, the result cache, and the model catalogue the cache keys name."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from infq.cache.key import CacheScope


class ResultSettings(BaseModel):
    """Results: where a result is stored, how long its URLs live, who shares the cache."""

    inline_result_max_bytes: int = Field(
        default=1024, ge=0, description="Results up to this size (JSON) stay in Postgres."
    )
    result_url_expires_s: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of presigned result and output URLs.",
    )
    cache_scope: CacheScope = Field(
        default=CacheScope.TENANT,
        description="`tenant` or `global`: who shares cached results.",
    )
    cache_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Older cache entries are ignored (infq never serves them).",
    )


class CatalogueSettings(BaseModel):
    """Models: the catalogue file beside the built-in models, and revision renames."""

    models_file: Path | None = Field(
        default=None,
        description="The model catalogue (TOML), beside the built-in models (unset: the "
        "built-in models alone).",
    )
    # Renaming a revision changes every cache key of the model, so results cached under
    # the old name are never served (e.g. after changing preprocessing).
    model_revisions: dict[str, str] = Field(
        default_factory=dict,
        description='JSON map model → new name of its single revision, e.g. `{"echo": "echo-2"}`.',
    )
