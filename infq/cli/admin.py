"""Operator commands: ``infq webhooks …`` and ``infq cache …`` (tenants: infq.cli.tenants)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infq.db import cache as cache_rows
from infq.db import webhooks as webhook_rows
from infq.db.session import one_shot_sessions
from infq.errors import InvalidInput, NotFound
from infq.settings import Settings

console = Console()
webhooks_app = typer.Typer(help="Webhook deliveries.")


@webhooks_app.callback(invoke_without_command=True)
def webhooks(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="List dead deliveries.")] = False,
) -> None:
    """``infq webhooks --failed`` lists dead deliveries; ``replay ID`` resends one."""
    if ctx.invoked_subcommand is not None:
        return
    if not failed:
        console.print("use --failed to list dead deliveries, or `infq webhooks replay ID`")
        raise typer.Exit(2)
    with one_shot_sessions(Settings().database) as sessions, sessions() as session:
        rows = webhook_rows.dead(session)
    table = Table("delivery", "event", "subject", "url", "attempts", "last error")
    for d in rows:
        last = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "")
        table.add_row(str(d.delivery_id), d.event, d.subject_id, d.url, str(d.attempts), last)
    console.print(table)


@webhooks_app.command("replay")
def replay(delivery_id: Annotated[str, typer.Argument(help="A dead delivery's id.")]) -> None:
    """Send a dead webhook delivery again, with a fresh attempt budget."""
    from infq.bus.celery import DELIVER_TASK, WEBHOOK_QUEUE, create_app

    try:
        key = uuid.UUID(delivery_id)
    except ValueError as e:
        raise InvalidInput(f"{delivery_id!r} is not a delivery id (a UUID)") from e
    settings = Settings()
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        reopened = webhook_rows.reopen(session, key)
    if not reopened:
        raise NotFound("dead delivery", delivery_id)
    create_app(settings).send_task(DELIVER_TASK, args=[delivery_id], queue=WEBHOOK_QUEUE)
    console.print(f"replaying {delivery_id}")


cache_app = typer.Typer(help="The result cache index.", no_args_is_help=True)


@cache_app.command("purge")
def purge_cache() -> None:
    """Delete cache entries older than INFQ_CACHE_RETENTION_DAYS (they are never served)."""
    settings = Settings()
    max_age = timedelta(days=settings.cache_retention_days)
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        removed = cache_rows.purge_expired(session, max_age=max_age)
    console.print(f"removed {removed} expired cache entries")
