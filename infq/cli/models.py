"""``infq models list|route|rollback|check``: the catalogue, canaries and precision.

A route is stored in Postgres, so every dispatcher applies it within seconds, without
a restart. ``rollback`` restores the route before the last change (or sends everything
to ``--to``) and moves jobs still waiting for a revision that lost its share.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infq.catalogue.catalogue import Catalogue, check_params, for_settings, lane_name
from infq.catalogue.entries import DType, Entry
from infq.catalogue.routing import BadRoute, check_route, parse_route
from infq.db import processes
from infq.db import routes as route_rows
from infq.db.session import one_shot_sessions
from infq.errors import InvalidInput
from infq.settings import Settings

console = Console()
app = typer.Typer(help="The model catalogue: revisions, routes, precision.", no_args_is_help=True)


def _entry(catalogue: Catalogue, model: str) -> Entry:
    """The model's entry; an unknown name ends the command (exit 4, with the known ones)."""
    return catalogue.get(model)


def _route_text(route: dict[str, int]) -> str:
    total = sum(route.values()) or 1
    return " ".join(f"{r}={100 * w / total:g}%" for r, w in route.items())


@app.command("list")
def list_models(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Models, their revisions, routes, live workers and jobs per revision."""
    settings = Settings()
    catalogue = for_settings(settings)
    with one_shot_sessions(settings.database) as sessions, sessions() as session:
        stored = route_rows.current(session)
        slots = processes.live_slots(session, stale_after_s=settings.lease_s)
        counts = {e.name: route_rows.revision_counts(session, e.name) for e in catalogue.entries}
    out: list[dict[str, Any]] = []
    for e in catalogue.entries:
        route = stored.get(e.name) or e.default_route
        out.append(
            {
                "model": e.name,
                "task": e.task.value,
                "aliases": list(e.aliases),
                "route": route,
                "route_stored": e.name in stored,
                "revisions": [
                    {
                        "revision": r.name,
                        "source": r.source,
                        "dtype": r.dtype.value,
                        "share": route.get(r.name, 0),
                        "worker_slots": slots.get(lane_name(e.name, r.name), 0),
                        "jobs": {
                            status: n
                            for (rev, status), n in counts[e.name].items()
                            if rev == r.name
                        },
                    }
                    for r in e.revisions
                ],
            }
        )
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table("model", "task", "revision", "dtype", "source", "share", "workers", "jobs")
    for m in out:
        for i, r in enumerate(m["revisions"]):
            jobs = ", ".join(f"{s} {n}" for s, n in sorted(r["jobs"].items())) or "-"
            table.add_row(
                m["model"] if i == 0 else "",
                m["task"] if i == 0 else "",
                r["revision"],
                r["dtype"],
                r["source"],
                f"{100 * r['share'] / (sum(m['route'].values()) or 1):g}%",
                str(r["worker_slots"]),
                jobs,
            )
    console.print(table)


@app.command("route")
def route(
    model: Annotated[str, typer.Argument(help="Model name or alias.")],
    shares: Annotated[list[str], typer.Argument(help="REVISION=SHARE … (e.g. v1=90 v2=10).")],
) -> None:
    """Send new jobs to revisions by share; dispatchers apply it within seconds."""
    settings = Settings()
    entry = _entry(for_settings(settings), model)
    try:
        chosen = check_route(parse_route(shares), [r.name for r in entry.revisions])
    except BadRoute as e:
        raise InvalidInput(f"{entry.name}: {e}") from e
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        route_rows.store(session, entry.name, chosen, note="route")
    console.print(f"{entry.name}: {_route_text(chosen)}")


@app.command("rollback")
def rollback(
    model: Annotated[str, typer.Argument(help="Model name or alias.")],
    to: Annotated[
        str | None, typer.Option("--to", help="Send everything to this revision instead.")
    ] = None,
) -> None:
    """Restore the route before the last change (or all to ``--to``); jobs waiting for
    a revision that lost its share move to the route's main revision."""
    settings = Settings()
    entry = _entry(for_settings(settings), model)
    names = [r.name for r in entry.revisions]
    with one_shot_sessions(settings.database) as sessions, sessions.begin() as session:
        history = route_rows.history(session, entry.name, limit=2)
        current = history[0].route if history else entry.default_route
        if to is not None:
            target = {to: 100}
        elif len(history) >= 2:
            target = history[1].route
        elif history:
            target = entry.default_route
        else:
            console.print(f"[red]{entry.name}: no route was ever set; nothing to roll back[/]")
            raise typer.Exit(1)
        try:
            target = check_route(target, names)
        except BadRoute as e:
            raise InvalidInput(f"{entry.name}: {e}") from e
        route_rows.store(session, entry.name, target, note="rollback")
        main = max(target, key=lambda r: target[r])
        away = [r for r in names if r in current and r not in target]
        moved = route_rows.reroute_waiting(session, entry.name, away_from=away, to=main)
    console.print(f"{entry.name}: {_route_text(target)} (was {_route_text(current)})")
    if moved:
        console.print(f"moved {moved} waiting jobs from {', '.join(away)} to {main}")


@app.command("check")
def check(
    model: Annotated[str, typer.Argument(help="Model name, alias, or MODEL@REVISION.")],
    dtype: Annotated[DType, typer.Option(help="Precision to compare with float32.")] = DType.INT8,
    texts: Annotated[int, typer.Option(help="How many bundled sentences to run.")] = 512,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
) -> None:
    """Throughput and agreement of a precision against float32 on bundled sentences."""
    from infq.demo.runner import load_texts
    from workers.adapters.base import resolve_device
    from workers.precision import check as run_check

    settings = Settings()
    catalogue = for_settings(settings)
    lane = catalogue.lanes([model])[0]
    report = run_check(
        lane,
        dtype,
        load_texts(repeats=0)[:texts],
        params=check_params(lane.entry, {}),
        device=resolve_device(device),
        batch_size=batch_size,
    )
    title = f"{report.lane} on {report.device}, {report.texts} texts, batches of {batch_size}"
    table = Table("precision", "jobs/s", "vs float32", report.agreement, title=title)
    table.add_row("float32", f"{report.reference_jobs_per_s:.0f}", "1.00x", "reference")
    table.add_row(report.dtype, f"{report.candidate_jobs_per_s:.0f}", f"{report.speedup:.2f}x",
                  f"mean {report.agreement_mean:.4f}, min {report.agreement_min:.4f}")  # fmt: skip
    console.print(table)
    console.print("throughput: best of 3 rounds each, reference and candidate alternating")
