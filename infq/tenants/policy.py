"""What a tenant may be called and how much it may have queued: pure rules, no database.

Names reach S3 keys (``batches/<tenant>/<batch>/output.jsonl``), file names and log
lines, so only plain names are created: lowercase letters, digits, ``.``, ``_`` and
``-``, starting with a letter or digit (no ``..`` segment, no ``/``, no spaces), at most
64 characters (the column's width). Limits are per tenant; ``None`` means unlimited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infq.errors import InvalidInput, OverLimit

# Whose a job is when its producer names no tenant (and the tenant `infq init` creates).
DEFAULT_TENANT = "default"
MAX_TENANT_NAME_LENGTH = 64
# The pattern as JSON Schema and pydantic write it; Python matches it with fullmatch
# (``$`` alone would let a trailing newline through).
TENANT_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_ALLOWED = "lowercase letters, digits, '.', '_' and '-'"
# When a tenant's queue is full nothing says when jobs will finish; a client that
# retries sooner than this would only be refused again.
QUEUE_FULL_RETRY_AFTER_S = 10.0


def check_tenant_name(name: str) -> str:
    """``name`` if a tenant may be created with it; else :class:`InvalidInput` saying
    what is wrong and what a name may hold."""
    if _NAME.fullmatch(name):
        return name
    raise InvalidInput(f"invalid tenant name {name!r}: {_why_not(name)}")


def _why_not(name: str) -> str:
    if not name:
        return f"it is empty (use 1 to {MAX_TENANT_NAME_LENGTH} {_ALLOWED})"
    if len(name) > MAX_TENANT_NAME_LENGTH:
        return f"{len(name)} characters; at most {MAX_TENANT_NAME_LENGTH}"
    bad = sorted({c for c in name if not re.fullmatch(r"[a-z0-9._-]", c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"{shown} not allowed (use {_ALLOWED})"
    return "it must start with a lowercase letter or digit"


@dataclass(frozen=True)
class TenantLimits:
    """How much one tenant may submit; ``None``: no limit."""

    max_queued_jobs: int | None = None
    rate_per_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_queued_jobs is not None and self.max_queued_jobs < 0:
            raise InvalidInput(f"max queued jobs must be 0 or more, got {self.max_queued_jobs}")
        if self.rate_per_s is not None and not self.rate_per_s > 0:
            raise InvalidInput(f"the rate must be above 0 jobs/s, got {self.rate_per_s}")


UNLIMITED = TenantLimits()


def check_queue_room(tenant: str, *, queued: int, jobs: int, max_queued_jobs: int | None) -> None:
    """Refuse ``jobs`` more for a tenant that has ``queued`` jobs waiting, when together
    they would exceed its limit (:class:`OverLimit` ``queue_full``). All or nothing: a
    request or file is never cut in two."""
    if max_queued_jobs is None or queued + jobs <= max_queued_jobs:
        return
    if jobs > max_queued_jobs:
        hint = "split the submission, or raise the limit (`infq tenants limits`)"
    else:
        hint = "retry when some have started"
    raise OverLimit(
        "queue_full",
        f"tenant {tenant!r} has {queued} jobs queued and may have {max_queued_jobs}; "
        f"{jobs} more would exceed it: {hint}",
        tenant=tenant,
        retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
    )
