"""``infq batches list|show|cancel|results``: batches from the operator's side (reads
Postgres and the result store directly, as ``infq status`` does; tenant ``default``
unless ``--tenant``)."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from infq import cancelling
from infq.api.batch_views import BatchView, load_view
from infq.bus.kafka import make_publisher
from infq.db import batch_list
from infq.db.session import one_shot_sessions
from infq.errors import InvalidInput
from infq.outbox.announce import Announcer
from infq.results.store import S3ResultStore
from infq.settings import Settings
from infq.tenants.policy import DEFAULT_TENANT
from schemas.batches import BatchStatus

app = typer.Typer(help="Batches: list, show, cancel, download results.", no_args_is_help=True)
console = Console()

Tenant = Annotated[str, typer.Option(help="Whose batches.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def load(settings: Settings, tenant: str, batch_id: str) -> BatchView:
    """One batch as the REST API shows it; :class:`NotFound` when unknown."""
    with one_shot_sessions(settings.database) as sessions, sessions() as session:
        return load_view(session, (tenant, batch_id),
                         store=S3ResultStore.from_settings(settings),
                         expires_s=settings.result_url_expires_s)  # fmt: skip


@app.command("list")
def list_batches(
    status: Annotated[
        list[BatchStatus] | None, typer.Option("--status", help="Only these (repeatable).")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    tenant: Tenant = DEFAULT_TENANT,
    as_json: AsJson = False,
) -> None:
    """The newest batches."""
    settings = Settings()
    store = S3ResultStore.from_settings(settings)
    with one_shot_sessions(settings.database) as sessions, sessions() as session:
        page = batch_list.list_batches(
            session, tenant=tenant, statuses=[s.value for s in status or ()],
            created_after=since, limit=limit,
        )  # fmt: skip
    views = [
        BatchView.of(b, page.counts[(b.tenant_id, b.batch_id)], store=store,
                     expires_s=settings.result_url_expires_s)
        for b in page.batches
    ]  # fmt: skip
    if as_json:
        typer.echo(orjson.dumps([v.model_dump(mode="json") for v in views]).decode())
        return
    table = Table(title=f"batches of {tenant}")
    for column in ("batch", "status", "model", "requests", "succeeded", "failed", "created"):
        table.add_column(column)
    for v in views:
        c = v.request_counts
        created = f"{v.created_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(v.batch_id, v.status.value, v.model or "-", str(c.total),
                      str(c.succeeded), str(c.failed), created)  # fmt: skip
    console.print(table)
    if page.next_cursor:
        console.print(f"(more: raise --limit above {limit})")


@app.command("show")
def show(batch_id: str, tenant: Tenant = DEFAULT_TENANT, as_json: AsJson = False) -> None:
    """A batch's status, request counts, times and files."""
    view = load(Settings(), tenant, batch_id)
    if as_json:
        typer.echo(orjson.dumps(view.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
        return
    table = Table(show_header=False, title=f"batch {batch_id}")
    c = view.request_counts
    rows = {
        "status": view.status.value,
        "model": view.model,
        "requests": f"{c.total}: {c.succeeded} succeeded, {c.failed} failed, "
        f"{c.cancelled} cancelled, {c.expired} expired",
        "progress": f"{view.progress:.0%}" if view.progress is not None else "unsealed",
        "created": view.created_at,
        "expires": view.expires_at,
        "finished": view.finished_at,
        "output": view.output_uri,
        "errors": view.error_uri,
        "metadata": orjson.dumps(view.metadata).decode() if view.metadata else None,
    }
    for name, value in rows.items():
        if value is not None:
            table.add_row(name, str(value))
    console.print(table)


@app.command("cancel")
def cancel(batch_id: str, tenant: Tenant = DEFAULT_TENANT) -> None:
    """Cancel a batch: its queued jobs now, its jobs still to arrive too; running jobs
    finish, then the batch ends cancelled with its files."""
    from infq.bus.celery import create_app

    settings = Settings()
    publisher = make_publisher(settings)
    try:
        with one_shot_sessions(settings.database) as sessions:
            announcer = Announcer(settings=settings, sessions=sessions, publisher=publisher,
                                  celery=create_app(settings))  # fmt: skip
            done = cancelling.cancel_batch(sessions, announcer, (tenant, batch_id))
    finally:
        publisher.close()
    console.print(f"batch {batch_id}: cancelled {len(done.jobs)} queued jobs; {done.status.value}")


def finished_batch(
    settings: Settings,
    batch_id: str,
    *,
    output: Path | None,
    timeout_s: float,
    tenant: str = DEFAULT_TENANT,
) -> BatchView:
    """Wait for a batch whose jobs are final to be finished (its files written), print
    its summary, and write its output file to ``output`` when given."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = load(settings, tenant, batch_id)
        if view.finished_at is not None or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    c = view.request_counts
    console.print(
        f"batch {batch_id} {view.status.value}: {c.succeeded} succeeded, {c.failed} failed, "
        f"{c.cancelled} cancelled, {c.expired} expired"
    )
    if view.output_uri and view.error_uri:
        console.print(f"output: {view.output_uri}\nerrors: {view.error_uri}")
        if output is not None:
            with output.open("wb") as file:
                S3ResultStore.from_settings(settings).download(view.output_uri, file)
            console.print(f"wrote {output} (JSONL in input order: job_id, custom_id, result)")
    return view


@app.command("results")
def results(
    batch_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default stdout).")
    ] = None,
    errors: Annotated[Path | None, typer.Option(help="Also write the error file here.")] = None,
    tenant: Tenant = DEFAULT_TENANT,
) -> None:
    """A finished batch's output file (JSONL in input order: job_id, custom_id, result)
    and, with --errors, its error file."""
    settings = Settings()
    view = load(settings, tenant, batch_id)
    if view.output_uri is None or view.error_uri is None:
        raise InvalidInput(
            f"batch {batch_id!r} is {view.status.value}; its files are written when it "
            "finishes (see `infq batches show`)"
        )
    # Streamed from S3 (a batch of millions of lines never sits in memory whole).
    store = S3ResultStore.from_settings(settings)
    if output is None:
        store.download(view.output_uri, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with output.open("wb") as file:
            store.download(view.output_uri, file)
        Console(stderr=True).print(f"wrote {output} ({view.request_counts.succeeded} results)")
    if errors is not None:
        with errors.open("wb") as file:
            store.download(view.error_uri, file)
        Console(stderr=True).print(f"wrote {errors}")
