"""The checks a job request must pass against the catalogue: one function for every edge.

The dispatcher runs :func:`check_request` on each Kafka record (:mod:`infq.dispatch.triage`);
the REST API and the CLI run it, through :func:`admit`, before they send anything. So a
wrong model, task, params, revision, an input too large (in bytes or, where the entry
says ``reject``, in tokens) or a malformed webhook URL is refused at once with the code
the dispatcher would have rejected the job with, and the two cannot drift apart.

Torch-free and without I/O except reading a ``tokenizer.json`` (once per revision); the
checks that need Postgres (a job id reused for other content) stay in the dispatcher.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infq.catalogue.catalogue import Catalogue
from infq.catalogue.entries import Entry, Revision
from infq.catalogue.intake import InputLimits
from infq.catalogue.routing import choose
from infq.errors import RejectedRecord
from infq.webhooks.urls import RefusedCallbackUrl, check_syntax
from schemas.jobs import JobRequest

# Stored routes by model (``infq models route``); a model without one uses its default.
Routes = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class Checked:
    """What a valid request resolves to: canonical entry, revision, task, complete params."""

    entry: Entry
    revision: Revision
    task: str
    params: dict[str, Any]


def pick_revision(entry: Entry, request: JobRequest, job_id: uuid.UUID, routes: Routes) -> Revision:
    """The job's pinned revision, else the one its model's route gives its id."""
    if request.revision is not None:
        try:
            return entry.revision(request.revision)
        except KeyError:
            known = ", ".join(r.name for r in entry.revisions)
            raise RejectedRecord(
                "unknown_revision",
                f"model {entry.name!r} has no revision {request.revision!r}; revisions: {known}",
                field="revision",
            ) from None
    route = routes.get(entry.name) or entry.default_route
    name = choose(route, job_id=str(job_id), model=entry.name)
    try:
        return entry.revision(name)
    except KeyError:
        # A stored route naming a revision the catalogue dropped: the default route.
        return entry.revision(choose(entry.default_route, job_id=str(job_id), model=entry.name))


def check_request(
    request: JobRequest,
    *,
    job_id: uuid.UUID,
    catalogue: Catalogue,
    max_input_bytes: int,
    routes: Routes | None = None,
    tokens: InputLimits | None = None,
) -> Checked:
    """Resolve a decoded request, or raise :class:`RejectedRecord` naming the field.

    ``job_id`` picks the revision when the request pins none (the route is a hash of
    it), and so which tokenizer counts the input.
    """
    size = len(request.input.text.encode("utf-8"))
    if size > max_input_bytes:
        raise RejectedRecord(
            "input_too_large",
            f"{size} bytes; the limit is {max_input_bytes}",
            field="input.text",
        )
    if request.webhook_url is not None:
        try:
            check_syntax(str(request.webhook_url))
        except RefusedCallbackUrl as e:
            raise RejectedRecord("invalid_webhook_url", e.reason, field="webhook_url") from e
    entry, task, params = catalogue.check_job(
        model=request.model, task=request.task, params=request.params
    )
    revision = pick_revision(entry, request, job_id, routes or {})
    if tokens is not None:
        tokens.check(entry, revision, request.input.text)
    return Checked(entry=entry, revision=revision, task=task, params=params)


def admit(
    request: JobRequest,
    *,
    catalogue: Catalogue,
    max_input_bytes: int,
    tokens: InputLimits | None,
    routes: Routes | None = None,
) -> JobRequest:
    """The request as an edge sends it, once it passed :func:`check_request`.

    A request without a job id gets one here, not later at encoding: the revision the
    route gives that id (whose tokenizer counted the input) is the one the dispatcher
    picks for the same id.
    """
    job_id = request.job_id or uuid.uuid4()
    check_request(
        request,
        job_id=job_id,
        catalogue=catalogue,
        max_input_bytes=max_input_bytes,
        routes=routes,
        tokens=tokens,
    )
    if request.job_id is None:
        return request.model_copy(update={"job_id": job_id})
    return request
