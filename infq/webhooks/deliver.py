"""One webhook attempt: check the destination, sign, POST, record, decide what is next.

The attempt count lives in Postgres, so a redelivered task message never resets the
retry budget. The POST goes to an address the check returned, within one deadline,
its response body unread (:mod:`infq.webhooks.transport`). Redirects are not followed
(they could lead to a private address). A host that does not resolve is retried.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy.orm import Session, sessionmaker

from infq.db import webhooks as webhook_rows
from infq.metrics import families
from infq.results.store import S3ResultStore
from infq.settings import Settings
from infq.webhooks.policy import Outcome, RetryPolicy, backoff_s, classify, next_step
from infq.webhooks.signing import signed_headers
from infq.webhooks.transport import post_checked
from infq.webhooks.urls import (
    RefusedCallbackUrl,
    UnresolvedHost,
    check_destination,
    system_resolve,
)

log = logging.getLogger("infq.webhooks")


@dataclass(frozen=True)
class AttemptResult:
    """What the task should do next: nothing, or retry after ``retry_in_s``.

    ``outcome`` is None when no attempt was made because none was due (a duplicate
    task message; the one that is due, or the outbox sweeper, makes it).
    """

    outcome: Outcome | None
    retry_in_s: float | None = None


def policy_of(settings: Settings) -> RetryPolicy:
    """The retry policy from settings."""
    return RetryPolicy(
        max_attempts=settings.webhook_max_attempts,
        base_delay_s=settings.webhook_base_delay_s,
        max_delay_s=settings.webhook_max_delay_s,
        timeout_s=settings.webhook_timeout_s,
    )


def hold_s(settings: Settings) -> float:
    """How long a claimed attempt keeps its delivery: past the POST's deadline (which
    covers connecting, sending and the answer) with room for resolving and recording.
    No longer: a notifier that dies mid-attempt leaves the delivery for this long, then
    the outbox sweep sends it again."""
    return settings.webhook_timeout_s + 5.0


def _with_result_url(payload: dict[str, Any], store: S3ResultStore, expires_s: int) -> bytes:
    """Large results travel as a presigned URL (and the byte range of the job's line)."""
    ref = payload.get("result_ref")
    if ref:
        payload = {
            **payload,
            "result_url": store.presign(ref["uri"], expires_s=expires_s),
            "result_range": f"bytes={ref['offset']}-{ref['offset'] + ref['length'] - 1}",
        }
    return orjson.dumps(payload)


def attempt(
    delivery_id: uuid.UUID,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    store: S3ResultStore,
    client: httpx.Client,
    rng: random.Random,
    resolve: Callable[[str, int], list[str]] = system_resolve,
) -> AttemptResult:
    """Make one attempt of a pending delivery and record it."""
    policy = policy_of(settings)
    with sessions.begin() as session:
        delivery = webhook_rows.claim(session, delivery_id, hold_s=hold_s(settings))
        if delivery is None:
            found = webhook_rows.get(session, delivery_id)
            if found is None or found.status != "pending":
                return AttemptResult(Outcome.DELIVERED if found else Outcome.DEAD)
            return AttemptResult(None)  # not due yet, or an attempt of it is in flight
        secret = webhook_rows.secret_of(session, delivery.tenant_id)
        session.expunge(delivery)
    status_code: int | None = None
    error: str | None = None
    started = time.monotonic()
    try:
        if secret is None:
            raise RefusedCallbackUrl(delivery.url, f"tenant {delivery.tenant_id!r} has no secret")
        addresses = check_destination(delivery.url, allow=settings.webhook_allow, resolve=resolve)
        body = _with_result_url(delivery.payload, store, settings.result_url_expires_s)
        headers = signed_headers(
            secret,
            body=body,
            timestamp_s=int(time.time()),
            delivery_id=str(delivery.delivery_id),
            event=delivery.event,
        )
        status_code = post_checked(
            client,
            delivery.url,
            addresses=addresses,
            content=body,
            headers=headers,
            deadline_s=settings.webhook_timeout_s,
        )
        outcome = next_step(
            outcome=classify(status_code=status_code, error=None),
            attempt=delivery.attempts + 1,
            policy=policy,
        )
    except (UnresolvedHost, httpx.HTTPError) as e:
        # Transient (UnresolvedHost first: it is a RefusedCallbackUrl, but DNS recovers).
        error = (
            f"unresolved: {e.reason}"
            if isinstance(e, UnresolvedHost)
            else f"{type(e).__name__}: {e}"
        )
        outcome = next_step(
            outcome=classify(status_code=None, error=error),
            attempt=delivery.attempts + 1,
            policy=policy,
        )
    except RefusedCallbackUrl as e:
        error, outcome = f"refused: {e.reason}", Outcome.DEAD
    duration_ms = int((time.monotonic() - started) * 1000)
    status = {Outcome.DELIVERED: "delivered", Outcome.DEAD: "dead"}.get(outcome, "pending")
    retry_in_s = None
    if outcome is Outcome.RETRY:
        retry_in_s = backoff_s(attempt=delivery.attempts + 1, policy=policy, rng=rng)
    with sessions.begin() as session:
        recorded = webhook_rows.record_attempt(
            session,
            delivery,
            status=status,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            retry_in_s=retry_in_s,
        )
    if not recorded:
        # This attempt outlived its hold and another was recorded: that one decides.
        log.warning("webhook delivery_id=%s: attempt outlived its hold", delivery.delivery_id)
        return AttemptResult(None)
    f = families()
    attempt_outcome = "delivered" if outcome is Outcome.DELIVERED else "failed"
    f.webhook_attempts.labels(event=delivery.event, outcome=attempt_outcome).inc()
    if outcome is Outcome.DEAD:
        f.webhook_dead.labels(event=delivery.event).inc()
    log.info(
        "webhook delivery_id=%s event=%s attempt=%d status_code=%s outcome=%s",
        delivery.delivery_id,
        delivery.event,
        delivery.attempts + 1,
        status_code,
        outcome,
    )
    return AttemptResult(outcome, retry_in_s)
