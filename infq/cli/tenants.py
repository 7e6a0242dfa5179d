"""``infq tenants …``: API keys, webhook secrets and limits, from the operator's side.

Keys are shown once, when issued (``create``, ``key``, ``rotate-key``), and stored only
hashed; the webhook secret is shown by ``show`` whenever a receiver needs it. The
``default`` tenant (jobs that name no tenant: ``infq submit``, Kafka producers) starts
without a key; ``infq tenants key default`` gives it one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from infq.db.models import Tenant
from infq.db.session import one_shot_sessions
from infq.errors import InvalidInput
from infq.settings import Settings
from infq.tenants import accounts
from infq.tenants.accounts import KEY_CACHE_TTL_S
from infq.tenants.policy import TenantLimits, check_tenant_name

app = typer.Typer(help="Tenants: API keys, webhook secrets and limits.", no_args_is_help=True)
console = Console()

Name = Annotated[str, typer.Argument(help="The tenant's name.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MaxQueued = Annotated[
    str | None,
    typer.Option("--max-queued", help="Jobs it may have queued at once: N, or 'unlimited'."),
]
Rate = Annotated[
    str | None,
    typer.Option("--rate", help="Jobs it may submit per second (REST): R, or 'unlimited'."),
]
_UNLIMITED = ("unlimited", "none")


def _max_queued(text: str) -> int | None:
    if text.strip().lower() in _UNLIMITED:
        return None
    try:
        value = int(text)
    except ValueError as e:
        raise InvalidInput(f"--max-queued: {text!r} is not a whole number or 'unlimited'") from e
    if value < 0:
        raise InvalidInput(f"--max-queued: {value} is below 0")
    return value


def _rate(text: str) -> float | None:
    if text.strip().lower() in _UNLIMITED:
        return None
    try:
        value = float(text)
    except ValueError as e:
        raise InvalidInput(f"--rate: {text!r} is not a number of jobs/s or 'unlimited'") from e
    if not 0 < value < float("inf"):
        raise InvalidInput(f"--rate: {text} jobs/s; it must be above 0")
    return value


def _changes(max_queued: str | None, rate: str | None) -> dict[str, Any]:
    """What the options set, checked before anything connects (an option left out
    keeps its value)."""
    changes: dict[str, Any] = {}
    if max_queued is not None:
        changes["max_queued_jobs"] = _max_queued(max_queued)
    if rate is not None:
        changes["rate_per_s"] = _rate(rate)
    return changes


def _describe(limits: TenantLimits) -> str:
    queued = limits.max_queued_jobs
    rate = limits.rate_per_s
    return (
        f"max queued jobs: {'unlimited' if queued is None else queued}; "
        f"rate: {'unlimited' if rate is None else f'{rate:g} jobs/s'}"
    )


def _view(tenant: Tenant, *, queued: int) -> dict[str, Any]:
    return {
        "tenant": tenant.tenant_id,
        "api_key": tenant.api_key_hash is not None,
        "max_queued_jobs": tenant.max_queued_jobs,
        "queued": queued,
        "rate_per_s": tenant.rate_per_s,
        "weight": tenant.weight,
        "created_at": tenant.created_at.isoformat(),
    }


@app.command("create")
def create(name: Name, max_queued: MaxQueued = None, rate: Rate = None) -> None:
    """Create a tenant; prints its API key (shown only now) and webhook secret. Its
    limits are INFQ_TENANT_MAX_QUEUED and INFQ_TENANT_RATE_PER_S unless given."""
    check_tenant_name(name)
    changes = _changes(max_queued, rate)
    settings = Settings()
    limits = replace(accounts.default_limits(settings), **changes)
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        made = accounts.create(session, name, limits=limits)
    if made is None:
        console.print(f"[red]tenant {name!r} exists[/]")
        raise typer.Exit(1)
    typer.echo(f"tenant: {made.tenant_id}")
    typer.echo(f"api key: {made.api_key}")
    typer.echo(f"webhook secret: {made.webhook_secret}")
    typer.echo(_describe(limits))


@app.command("list")
def list_tenants(as_json: AsJson = False) -> None:
    """Every tenant: whether it has a key, its limits and how many jobs it has queued."""
    with one_shot_sessions(Settings().database) as sessions, sessions() as session:
        rows = accounts.all_tenants(session)
        queued = accounts.queued_counts(session)
    views = [_view(t, queued=queued.get(t.tenant_id, 0)) for t in rows]
    if as_json:
        typer.echo(orjson.dumps(views).decode())
        return
    table = Table("tenant", "api key", "queued", "max queued", "rate (jobs/s)", "created")
    for v in views:
        table.add_row(
            v["tenant"],
            "yes" if v["api_key"] else "-",
            str(v["queued"]),
            "unlimited" if v["max_queued_jobs"] is None else str(v["max_queued_jobs"]),
            "unlimited" if v["rate_per_s"] is None else f"{v['rate_per_s']:g}",
            v["created_at"][:16].replace("T", " "),
        )
    console.print(table)


@app.command("show")
def show(name: Name, as_json: AsJson = False) -> None:
    """One tenant: its webhook secret (receivers verify signatures with it), whether it
    has an API key, its limits and queued jobs."""
    with one_shot_sessions(Settings().database) as sessions, sessions() as session:
        tenant = accounts.existing(session, name)
        queued = accounts.queued_counts(session).get(name, 0)
    view = {**_view(tenant, queued=queued), "webhook_secret": tenant.webhook_secret}
    if as_json:
        typer.echo(orjson.dumps(view).decode())
        return
    key = "yes" if view["api_key"] else f"none (`infq tenants key {name}` issues one)"
    typer.echo(f"tenant: {name}")
    typer.echo(f"api key: {key}")
    typer.echo(f"webhook secret: {tenant.webhook_secret}")
    typer.echo(f"{_describe(accounts.limits_of(tenant))}; queued now: {queued}")


@app.command("key")
def issue_key(name: Name) -> None:
    """Issue an API key for a tenant that has none (e.g. ``default``); printed once."""
    with one_shot_sessions(Settings().database) as sessions, sessions.begin() as session:
        api_key = accounts.issue_key(session, name)
    typer.echo(f"api key: {api_key}")


@app.command("rotate-key")
def rotate_key(name: Name) -> None:
    """Replace a tenant's API key; prints the new one once. The old key is refused
    within a few seconds (each API process trusts a key it looked up that long)."""
    with one_shot_sessions(Settings().database) as sessions, sessions.begin() as session:
        api_key = accounts.rotate_key(session, name)
    typer.echo(f"api key: {api_key}")
    typer.echo(f"the old key is refused within {KEY_CACHE_TTL_S:g} s", err=True)


@app.command("revoke-key")
def revoke_key(name: Name) -> None:
    """Remove a tenant's API key: the REST API refuses it (within a few seconds). Its
    jobs, webhooks and Kafka producers are unaffected."""
    with one_shot_sessions(Settings().database) as sessions, sessions.begin() as session:
        had = accounts.revoke_key(session, name)
    if had:
        typer.echo(f"revoked the API key of {name!r}; refused within {KEY_CACHE_TTL_S:g} s")
    else:
        typer.echo(f"tenant {name!r} had no API key")


@app.command("limits")
def limits(name: Name, max_queued: MaxQueued = None, rate: Rate = None) -> None:
    """Show a tenant's limits, or change them: ``--max-queued`` (Kafka, REST and
    ``infq submit``) and ``--rate`` (REST); 'unlimited' removes one."""
    changes = _changes(max_queued, rate)
    with one_shot_sessions(Settings().database) as sessions, sessions.begin() as session:
        new = replace(accounts.limits_of(accounts.existing(session, name)), **changes)
        if changes:
            accounts.set_limits(session, name, new)
    typer.echo(f"{name}: {_describe(new)}")
