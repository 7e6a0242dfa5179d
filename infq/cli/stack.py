"""``infq stack up | status | down``: the local services from PyPI wheels."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from infq.ops.bootstrap import forget_lost_payloads, initialise
from infq.settings import Settings
from infq.stack.supervisor import ServiceState, Stack

app = typer.Typer(
    help="Local Kafka (Tansu), PostgreSQL, Redis and S3 (moto).", no_args_is_help=True
)
console = Console()


def stack_for(settings: Settings) -> Stack:
    """The local stack under ``INFQ_STACK_DIR`` with its configured ports."""
    ports = {
        "kafka": settings.stack_kafka_port,
        "postgres": settings.stack_postgres_port,
        "redis": settings.stack_redis_port,
        "s3": settings.stack_s3_port,
    }
    return Stack(settings.stack_dir, ports=ports)


def _table(states: list[ServiceState], title: str) -> Table:
    table = Table(title=title)
    for column in ("service", "port", "pid", "state"):
        table.add_column(column)
    for s in states:
        if s.healthy:
            state = "[green]started[/]" if s.started_now else "[green]healthy[/]"
        elif s.alive:
            state = "[yellow]unhealthy[/]"
        else:
            state = "[red]stopped[/]"
        table.add_row(s.name, str(s.port or "-"), str(s.pid or "-"), state)
    return table


def bring_up(settings: Settings) -> Settings:
    """Start (or find) the stack, initialise it, and return settings that point at it."""
    states = stack_for(settings).up()
    console.print(_table(states, f"infq local stack ({settings.stack_dir})"))
    fresh = Settings()
    report = initialise(fresh)
    if any(s.name == "s3" and s.started_now for s in states):
        forgotten = forget_lost_payloads(fresh)
        if forgotten:
            console.print(f"S3 restarted empty: forgot {forgotten} cached results")
    if report.topics_created:
        console.print(f"created topics: {', '.join(report.topics_created)}")
    return fresh


@app.command("up")
def up() -> None:
    """Start the local services (idempotent), migrate Postgres, create topics and bucket.
    A service that cannot start ends it with one line and exit status 3."""
    bring_up(Settings())


@app.command("status")
def status() -> None:
    """Show each local service and whether it is healthy."""
    settings = Settings()
    states = stack_for(settings).status()
    console.print(_table(states, f"infq local stack ({settings.stack_dir})"))
    if not all(s.healthy for s in states):
        raise typer.Exit(1)


@app.command("down")
def down() -> None:
    """Stop the services this stack started (data under the stack dir is kept)."""
    stopped = stack_for(Settings()).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
