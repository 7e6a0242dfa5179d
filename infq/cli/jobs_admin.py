"""``infq jobs list|show|cancel``: jobs from the operator's side.

Reads Postgres (and the result store) directly, as ``infq status`` does: the operator
is trusted, so ``show`` and ``cancel`` take any tenant's job by its id (``--tenant``
narrows them), and ``list`` shows tenant ``default`` unless ``--tenant``. The listing
is the REST API's (:mod:`infq.db.listing`), page for page; ``--json`` prints the same
body as ``GET /v1/jobs``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from infq import cancelling
from infq.api.views import JobList, job_view
from infq.bus.kafka import make_publisher
from infq.db import jobs as job_rows
from infq.db import listing
from infq.db.models import Job
from infq.db.session import one_shot_sessions
from infq.errors import Conflict, InvalidInput, NotFound
from infq.outbox.announce import Announcer
from infq.outbox.events import event_for
from infq.pagination import Cursor
from infq.results.fetch import read_result
from infq.results.store import ResultStoreError, S3ResultStore
from infq.settings import Settings
from infq.tenants.policy import DEFAULT_TENANT

app = typer.Typer(help="Jobs: list, show, cancel.", no_args_is_help=True)
console = Console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
JobId = Annotated[str, typer.Argument(help="The job id (a UUID).")]
AnyTenant = Annotated[
    str | None, typer.Option(help="Only if the job is this tenant's (default: any tenant).")
]


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as e:
        raise InvalidInput(f"{text!r} is not a job id (a UUID)") from e


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidInput(f"--since: {text!r} is not an ISO 8601 time") from e


def _find(sessions: sessionmaker[Session], job_id: uuid.UUID, tenant: str | None) -> Job:
    """The job, or :class:`NotFound` (also when it is not ``tenant``'s)."""
    with sessions() as session:
        job = job_rows.get(session, job_id)
    if job is None or (tenant is not None and job.tenant_id != tenant):
        raise NotFound("job", str(job_id))
    return job


@app.command("list")
def list_jobs(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only these statuses (repeat it, or separate by commas)."),
    ] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch's jobs.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after (ISO 8601; UTC without a zone).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=listing.MAX_LIMIT)] = 20,
    after: Annotated[
        str | None, typer.Option(help="Go on after this cursor (printed under a full page).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="Whose jobs.")] = DEFAULT_TENANT,
    as_json: AsJson = False,
) -> None:
    """The newest jobs, with their status, model, batch and error."""
    query = listing.JobQuery(
        tenant=tenant,
        statuses=listing.parse_statuses(status or ()),
        batch_id=batch,
        created_after=_since(since),
        limit=limit,
        cursor=Cursor.decode(after) if after else None,
    )
    settings = Settings()
    with one_shot_sessions(settings.database) as sessions, sessions() as session:
        page = listing.list_jobs(session, query=query)
    cursor = page.next_cursor.encode() if page.next_cursor else None
    if as_json:
        body = JobList(data=[job_view(j) for j in page.jobs], has_more=page.has_more,
                       next_cursor=cursor)  # fmt: skip
        typer.echo(body.model_dump_json())
        return
    table = Table(title=f"jobs of {tenant}, newest first")
    for column in ("job id", "status", "model", "batch", "created", "error"):
        table.add_column(column)
    for j in page.jobs:
        table.add_row(str(j.job_id), j.status, j.model, j.batch_id or "-",
                      f"{j.created_at:%Y-%m-%d %H:%M:%S}", j.error_code or "")  # fmt: skip
    console.print(table)
    if cursor:
        console.print(f"more: --after {cursor}")


@app.command("show")
def show(job_id: JobId, as_json: AsJson = False, tenant: AnyTenant = None) -> None:
    """A job's status, error, timings and result."""
    settings = Settings()
    key = _job_id(job_id)
    with one_shot_sessions(settings.database) as sessions:
        job = _find(sessions, key, tenant)
    try:
        result = read_result(job, S3ResultStore.from_settings(settings))
    except ResultStoreError as e:
        result = None
        Console(stderr=True).print(f"[yellow]result unavailable:[/] {e}")
    view = event_for(job).model_dump(mode="json")
    view["result"] = result
    view["attempts"] = job.attempts
    if as_json:
        typer.echo(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(show_header=False, title=f"job {job_id}")
    for name in ("status", "model", "task", "model_revision", "batch_id", "batch_size", "attempts",
                 "submitted_at", "started_at", "finished_at"):  # fmt: skip
        table.add_row(name, str(view.get(name)))
    if view["error"]:
        table.add_row("error", f"{view['error']['code']}: {view['error']['message']}")
    if view["result_ref"]:
        ref = view["result_ref"]
        table.add_row("stored at", f"{ref['uri']} bytes {ref['offset']}+{ref['length']}")
    if result is not None:
        table.add_row("result", _preview(result))
    console.print(table)


@app.command("cancel")
def cancel(job_id: JobId, tenant: AnyTenant = None) -> None:
    """Cancel a queued job: it never runs (exit 1 when it already runs or is final)."""
    from infq.bus.celery import create_app

    settings = Settings()
    key = _job_id(job_id)
    publisher = make_publisher(settings)
    try:
        with one_shot_sessions(settings.database) as sessions:
            job = _find(sessions, key, tenant)
            announcer = Announcer(settings=settings, sessions=sessions, publisher=publisher,
                                  celery=create_app(settings))  # fmt: skip
            if not cancelling.cancel_jobs(sessions, announcer, job.tenant_id, [key]):
                now = _find(sessions, key, tenant)
                raise Conflict(f"job {key} is {now.status}; only queued jobs can be cancelled")
    finally:
        publisher.close()
    console.print(f"job {key}: cancelled")


def _preview(result: Any) -> str:
    if isinstance(result, list) and len(result) > 6:
        head = ", ".join(f"{x:.4f}" if isinstance(x, float) else str(x) for x in result[:6])
        return f"[{head}, …] ({len(result)} values)"
    return orjson.dumps(result).decode()
