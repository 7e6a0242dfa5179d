"""``infq demo``: stack up, dispatcher + worker, a real data set end to end, a summary."""

from __future__ import annotations

import typer
from rich.console import Console

from infq.cli.stack import bring_up
from infq.demo.runner import run_demo
from infq.errors import InfqError
from infq.settings import Settings


def demo() -> None:
    """Run ~1,700 real sentences through the whole pipeline on this machine."""
    console = Console()
    try:
        settings = bring_up(Settings())
        run_demo(settings, console)
    except (InfqError, RuntimeError, TimeoutError) as e:
        console.print(f"[red]demo failed:[/] {e}")
        raise typer.Exit(1) from e
