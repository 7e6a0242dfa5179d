"""What a job may ask of each task: its ``params``, validated at the edge.

The dispatcher (and the REST API) normalise params with these models, so a worker only
ever sees complete, valid params, and equal requests get equal cache keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from infq.catalogue.entries import Task


class EmbedParams(BaseModel):
    """``embed``: ``normalize`` None keeps what the model folder declares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    normalize: bool | None = None


class ClassifyParams(BaseModel):
    """``classify``: ``top_k`` labels in ``labels`` (all when unset); ``multi_label``
    scores each label with a sigmoid instead of a softmax over all (None: as the model
    config's ``problem_type`` says)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int | None = Field(default=None, ge=1, le=1000)
    multi_label: bool | None = None


class GenerateParams(BaseModel):
    """``generate``: greedy when ``temperature`` is 0; ``seed`` makes sampling repeatable;
    the text is cut before the first of ``stop``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stop: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: list[str]) -> list[str]:
        if any(not s or len(s) > 256 for s in value):
            raise ValueError("each stop string must be 1 to 256 characters")
        return value


class EchoParams(BaseModel):
    """``echo`` (pipeline tests): ``fail`` fails the job, ``delay_ms`` holds the batch
    that long, as a forward pass does (chaos tests kill workers mid-batch with it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upper: bool = False
    fail: bool = False
    delay_ms: int = Field(default=0, ge=0, le=60_000)


class CustomParams(RootModel[dict[str, Any]]):
    """``custom``: any JSON object; the model itself judges it (an error fails the job)."""


PARAMS: dict[Task, type[BaseModel]] = {
    Task.EMBED: EmbedParams,
    Task.CLASSIFY: ClassifyParams,
    Task.GENERATE: GenerateParams,
    Task.ECHO: EchoParams,
    Task.CUSTOM: CustomParams,
}
