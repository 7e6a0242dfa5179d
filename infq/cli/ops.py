"""``infq up``, ``infq autoscale`` and the ``infq status`` overview."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from infq import metrics
from infq.catalogue.catalogue import for_settings
from infq.db.session import engine_for, make_sessionmaker
from infq.errors import ServiceUnavailable
from infq.logs import configure
from infq.ops.autoscaler import WORKER_METRICS_OFFSET, Autoscaler
from infq.ops.flower import credentials
from infq.ops.health import UP_FILE, Health, collect
from infq.ops.lag import LagProbe, LagWatcher
from infq.ops.supervisor import Supervisor, infq_argv
from infq.outages import tcp_problem
from infq.settings import Environment, Settings

console = Console()
DEFAULT_METRICS_PORT = 9400
RESTART_DELAY_S = 2.0
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")


def _sink() -> Any:
    colours: dict[str, str] = {}
    lock = threading.Lock()

    def write(name: str, line: str) -> None:
        with lock:
            colour = colours.setdefault(name, COLOURS[len(colours) % len(COLOURS)])
            console.print(Text(f"{name:<11}| ", style=colour) + Text(line), soft_wrap=True)

    return write


def autoscale(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Models the pool serves.")
    ] = None,
) -> None:
    """Run a pool of local workers that follows the backlog (INFQ_AUTOSCALE_*)."""
    settings = Settings()
    configure(settings.log_level)
    names = model or for_settings(settings).names
    engine = engine_for(settings)
    scaler = Autoscaler(settings, make_sessionmaker(engine), Supervisor(_sink()), models=names,
                        lag=LagWatcher(settings).start())  # fmt: skip
    metrics.serve(settings.metrics_port, what="autoscaler")
    signal.signal(signal.SIGTERM, lambda *_: scaler.stop())
    signal.signal(signal.SIGINT, lambda *_: scaler.stop())
    scaler.run()
    engine.dispose()


def up() -> None:
    """Run everything: dispatcher (+ scheduler), notifier, API, Flower and the autoscaled
    worker pool, with one log view. Ctrl-C drains the workers and stops it all."""
    from infq.cli.stack import bring_up

    settings = Settings()
    configure(settings.log_level)
    if settings.environment is Environment.LOCAL:
        settings = bring_up(settings)
    base = settings.metrics_port or DEFAULT_METRICS_PORT
    # The autoscaler's workers serve /metrics from base + 10 (see WORKER_METRICS_OFFSET).
    settings = settings.model_copy(update={"metrics_port": base})
    user, _ = credentials(settings)  # generates the local password file Flower reads
    sink = _sink()
    supervisor = Supervisor(sink)
    services = {
        "dispatcher": (infq_argv("dispatcher"), {"INFQ_METRICS_PORT": str(base + 1)}),
        "notifier": (infq_argv("notifier"), {"INFQ_METRICS_PORT": str(base + 2)}),
        "api": (infq_argv("api"), {"INFQ_METRICS_PORT": str(base + 4)}),
        "flower": (infq_argv("flower"), {}),
    }
    for name, (argv, env) in services.items():
        supervisor.start(name, argv, env=env, meta={"service": name})
    engine = engine_for(settings)
    scaler = Autoscaler(settings, make_sessionmaker(engine), supervisor,
                        models=for_settings(settings).names,
                        lag=LagWatcher(settings).start())  # fmt: skip
    metrics.serve(base + 3, what="infq up (autoscaler)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=scaler.run, name="infq-autoscaler", daemon=True)
    thread.start()
    record = settings.stack_dir / UP_FILE
    sink("up", f"Flower http://127.0.0.1:{settings.flower_port} (user {user}, password in "
               f"{settings.stack_dir}/flower-password); API http://{settings.api_host}:"
               f"{settings.api_port}/docs; metrics :{base + 1} dispatcher, :{base + 2} notifier, "
               f":{base + 3} autoscaler, :{base + 4} API, :{base + WORKER_METRICS_OFFSET}+n "
               f"workers; Ctrl-C stops")  # fmt: skip
    recorded: dict[str, int] = {}
    try:
        while not stop.wait(0.5):
            for child in supervisor.reap():
                service = child.meta.get("service")
                if service and not stop.is_set():
                    time.sleep(RESTART_DELAY_S)
                    supervisor.start(child.name, child.argv, env=child.env, meta=child.meta)
            recorded = _record(record, supervisor, recorded)
    finally:
        sink("up", "stopping: draining workers, then the services")
        scaler.stop()
        thread.join(timeout=settings.worker_grace_s + 10)
        supervisor.stop_all(grace_s=30)
        record.unlink(missing_ok=True)
        engine.dispose()


def _record(path: Path, supervisor: Supervisor, last: dict[str, int]) -> dict[str, int]:
    """Write what runs to ``up.json`` for ``infq status`` when it changed."""
    processes = {c.name: c.proc.pid for c in supervisor.children if c.alive}
    if processes != last:
        path.write_text(json.dumps({"pid": os.getpid(), "processes": processes}))
    return processes


def overview(as_json: bool) -> None:
    """``infq status`` without a job id. A service that refuses connections is not asked
    anything more (a Kafka client would retry for half a minute); the command then ends
    with one line naming what is down, exit status 3."""
    settings = Settings()
    lag = None
    if tcp_problem(settings.kafka, service="kafka") is None:
        try:
            probe = LagProbe(settings)
            try:
                lag = probe.lag(settings.jobs_topic)
            finally:
                probe.close()
        except Exception:  # noqa: S110 - Kafka is reported unreachable by the service check
            pass
    health = None
    if tcp_problem(settings.database, service="postgres") is None:
        engine = engine_for(settings)
        try:
            with make_sessionmaker(engine)() as session:
                health = collect(settings, session, kafka_lag=lag)
        except Exception:  # noqa: S110 - reported as Postgres unreachable just below
            pass
        finally:
            engine.dispose()
    if health is None:
        health = collect(settings, None, kafka_lag=lag)
    if as_json:
        typer.echo(health.to_json())
    else:
        _print(health)
    down = health.unreachable
    if down:
        raise ServiceUnavailable(list(down))  # the table above says why
    if not health.healthy:
        raise typer.Exit(1)


def _print(h: Health) -> None:
    ok = "[green]healthy[/]" if h.healthy else "[red]unhealthy[/]"
    console.print(f"infq: {ok}")
    services = Table("service", "state", title="services")
    for name, state in h.services.items():
        services.add_row(name, state if state != "ok" else "[green]ok[/]")
    for name, state in h.processes.items():
        services.add_row(f"infq up: {name}", state)
    console.print(services)
    work = Table("model", "kafka", "ready", "handed out", "held", "computing", "done/s (1 min)",
                 title="work remaining")  # fmt: skip
    lag = "?" if h.kafka_lag is None else str(h.kafka_lag)
    for model in sorted({*h.work, *h.throughput_jobs_per_s}):
        st = h.work.get(model, {})
        work.add_row(model, lag, *(str(st.get(k, 0)) for k in
                                   ("ready", "handed_out", "held", "computing")),
                     str(h.throughput_jobs_per_s.get(model, 0.0)))  # fmt: skip
    if not h.work and not h.throughput_jobs_per_s:
        work.add_row("(none)", lag, "0", "0", "0", "0", "0")
    console.print(work)
    workers = Table("process", "models", "held", "jobs done", "state", title="workers")
    for w in h.workers:
        state = "draining" if w["draining"] else ("live" if w["live"] else "silent")
        workers.add_row(str(w["process_id"]), ",".join(w["models"]), str(w["held"]),
                        str(w["jobs_done"]), state)  # fmt: skip
    console.print(workers)
    if h.recent_failures:
        failures = Table("finished", "job", "model", "status", "error", title="recent failures")
        for f in h.recent_failures:
            error = f"{f['error_code']}: {f['error_message']}"[:80]
            failures.add_row(f"{f['finished_at']:%H:%M:%S}", str(f["job_id"]), f["model"],
                             f["status"], error)  # fmt: skip
        console.print(failures)
