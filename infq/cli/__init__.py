"""The ``infq`` command line (Typer + Rich). Each command builds settings once and
passes them down; nothing connects before a command runs."""

from __future__ import annotations

import sys

import typer

from infq.cli import admin, batches, dlq, jobs, jobs_admin, models, ops, run, stack, tenants
from infq.cli.bench import bench
from infq.cli.demo import demo
from infq.cli.exits import explain

app = typer.Typer(
    name="infq",
    help="Event-driven asynchronous inference job queue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(tenants.app, name="tenants")
app.add_typer(admin.webhooks_app, name="webhooks")
app.add_typer(admin.cache_app, name="cache")
app.add_typer(models.app, name="models")
app.add_typer(batches.app, name="batches")
app.add_typer(jobs_admin.app, name="jobs")
app.add_typer(dlq.app, name="dlq")
app.command("init")(run.init)
app.command("dispatcher")(run.dispatcher)
app.command("scheduler")(run.scheduler)
app.command("worker")(run.worker)
app.command("notifier")(run.notifier)
app.command("api")(run.api)
app.command("flower")(run.flower)
app.command("autoscale")(ops.autoscale)
app.command("up")(ops.up)
app.command("submit")(jobs.submit)
app.command("precompute")(jobs.precompute)
app.command("status")(jobs.status)
app.command("demo")(demo)
app.command("bench")(bench)


def main() -> None:
    """Console-script entry point: an expected error (a setting, a service that is down,
    an unknown model, a missing job) is one line on stderr and the exit status of its
    kind (:class:`infq.cli.exits.ExitCode`), not a traceback."""
    try:
        app()
    except Exception as e:
        failure = explain(e)
        if failure is None:
            raise  # a bug: keep the traceback
        print(f"infq: error: {failure.message}", file=sys.stderr)
        sys.exit(failure.code)
