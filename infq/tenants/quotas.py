"""Per-tenant limits at the REST API, checked before anything is sent to Kafka.

Max queued jobs is counted in Postgres for every submission (bounded by the limit, see
:func:`infq.tenants.accounts.queued_up_to`); the rate is a token bucket held by this process, so
N API processes admit up to N times a tenant's rate. Limits are re-read from Postgres
every :data:`LIMITS_TTL_S` seconds: ``infq tenants limits`` takes effect within that.
Jobs already on Kafka but not yet recorded are not counted here; the dispatcher refuses
those past the limit (``tenant_queue_full``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker

from infq.errors import OverLimit
from infq.tenants import accounts
from infq.tenants.policy import TenantLimits, check_queue_room
from infq.tenants.ratelimit import RateLimiter

LIMITS_TTL_S = 5.0


class Quotas:
    """The limits of every tenant this API process serves, and its rate buckets."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.rates = RateLimiter(burst_s=burst_s, clock=clock)
        self._clock = clock
        self._limits: dict[str, tuple[TenantLimits, float]] = {}
        self._lock = threading.Lock()

    def admit(self, tenant: str, *, jobs: int, job_ids: Sequence[uuid.UUID] = ()) -> None:
        """Let ``jobs`` new jobs of ``tenant`` through, or raise :class:`OverLimit`
        (``queue_full`` first: it costs no tokens; then ``rate_limited``). Of the
        ``job_ids`` the request names, those already recorded are a resubmission's, not
        new jobs (they are queued already, or done): they count for neither limit."""
        limits = self.limits(tenant)
        cap = limits.max_queued_jobs
        if job_ids and (cap is not None or limits.rate_per_s is not None):
            with self.sessions() as session:
                jobs -= accounts.recorded(session, tenant, job_ids)
        if cap is not None:
            with self.sessions() as session:
                queued = accounts.queued_up_to(session, tenant, cap=cap)
            check_queue_room(tenant, queued=queued, jobs=jobs, max_queued_jobs=cap)
        rate = limits.rate_per_s
        wait_s = self.rates.take(tenant, jobs, rate_per_s=rate)
        if rate is not None and wait_s > 0:
            raise OverLimit(
                "rate_limited",
                f"tenant {tenant!r} may submit {rate:g} jobs/s (bursts of "
                f"{self.rates.capacity(rate):g}); retry in {wait_s:.1f} s",
                tenant=tenant,
                retry_after_s=wait_s,
            )

    def limits(self, tenant: str) -> TenantLimits:
        """The tenant's limits, as read from Postgres at most :data:`LIMITS_TTL_S` ago."""
        now_s = self._clock()
        with self._lock:
            known = self._limits.get(tenant)
        if known is not None and now_s - known[1] < LIMITS_TTL_S:
            return known[0]
        with self.sessions() as session:
            limits = accounts.load_limits(session, tenant)
        with self._lock:
            self._limits[tenant] = (limits, now_s)
        return limits
