"""``infq bench``: the benchmark report (see :mod:`benchmarks.run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown

from infq.cli.stack import bring_up
from infq.errors import InfqError
from infq.settings import Environment, Settings


def bench(
    smoke: Annotated[bool, typer.Option(help="Every phase for a few seconds (CI).")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default benchmarks/results).")
    ] = None,
) -> None:
    """Measure (a) the raw model loop, (b) end to end burst and sustained, (c) echo,
    (d) naive Celery, (e) cache hits, (f) latency at half load, in one run."""
    from benchmarks.run import RESULTS, Sizes, run

    console = Console()
    settings = Settings()
    try:
        if settings.environment is Environment.LOCAL:
            settings = bring_up(settings)
        sizes = Sizes.smoke() if smoke else Sizes()
        paths = run(settings, sizes=sizes, out=out or RESULTS, console=console)
    except (InfqError, RuntimeError, TimeoutError) as e:
        console.print(f"[red]bench failed:[/] {e}")
        raise typer.Exit(1) from e
    console.print(Markdown(paths["md"].read_text()))
    console.print(f"report: {paths['json']}, {paths['md']}, {paths['png']}")
