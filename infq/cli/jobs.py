"""``infq submit`` and ``infq status``: the caller's side of the queue."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from infq.completion import event_for
from infq.db import jobs as job_rows
from infq.db.session import one_shot_sessions
from infq.errors import InvalidInput, NotFound
from infq.follow import follow_batch
from infq.outages import require_reachable
from infq.results.fetch import read_result
from infq.results.store import ResultStoreError, S3ResultStore
from infq.settings import Settings
from producers.jsonl import BadLine, requests_from_lines
from producers.sdk import JobProducer, new_batch_id
from schemas.jobs import JobRequest

console = Console()


def _read_requests(file: Path, *, model: str, batch_id: str) -> list[JobRequest]:
    try:
        return requests_from_lines(file.read_text().splitlines(), model=model, batch_id=batch_id)
    except BadLine as e:
        raise InvalidInput(f"{file}: {e}") from e


def submit(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one job a line.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model for every job.")],
    batch_id: Annotated[str | None, typer.Option(help="Batch id (generated if absent).")] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="Called (signed) when the whole batch is done.")
    ] = None,
) -> None:
    """Submit every line of FILE as a job of one batch, then seal it; prints the batch id."""
    settings = Settings()
    batch = batch_id or new_batch_id()
    requests = _read_requests(file, model=model, batch_id=batch)
    # A producer would wait half a minute for a broker that is not there.
    require_reachable(settings, "kafka")
    with (
        JobProducer(
            settings.kafka, topic=settings.jobs_topic, batches_topic=settings.batches_topic
        ) as producer,
        Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar,
    ):
        task = bar.add_task("submitting", total=len(requests))
        producer.submit_requests(requests, on_sent=lambda n: bar.advance(task, n))
        producer.seal_batch(batch, total_jobs=len(requests), webhook_url=webhook_url)
    console.print(f"submitted {len(requests)} jobs; batch id: [bold]{batch}[/]")


def precompute(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one input a line.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to warm the cache for.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant whose cache to warm.")] = None,
    timeout_s: Annotated[float, typer.Option(help="Give up waiting after this long.")] = 3600,
) -> None:
    """Compute FILE's inputs ahead of time, so later identical jobs are cache hits."""
    settings = Settings()
    batch = f"precompute-{new_batch_id()}"
    requests = [
        r.model_copy(update={"tenant": tenant, "cache": True})
        for r in _read_requests(file, model=model, batch_id=batch)
    ]
    require_reachable(settings, "kafka", "postgres")
    with one_shot_sessions(settings.database) as sessions:
        with (
            JobProducer(settings.kafka, topic=settings.jobs_topic) as producer,
            Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar,
        ):
            sending = bar.add_task("submitting", total=len(requests))
            producer.submit_requests(requests, on_sent=lambda n: bar.advance(sending, n))
            computing = bar.add_task("precomputing", total=len(requests))
            follow_batch(
                sessions, batch, total=len(requests), bar=bar, task=computing,
                timeout_s=timeout_s,
            )  # fmt: skip
        with sessions() as session:
            counts = job_rows.count_by_status(session, batch_id=batch)
            cached = job_rows.count_cache_hits(session, batch_id=batch)
    summary = ", ".join(f"{s}: {n}" for s, n in sorted(counts.items()))
    console.print(
        f"precomputed {len(requests)} inputs ({summary}; {cached} were already cached); "
        f"batch id: [bold]{batch}[/]"
    )


def status(
    job_id: Annotated[
        str | None, typer.Argument(help="A job id (UUID); none: the system overview.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Without a job id: health, work remaining, workers, throughput, recent failures.
    With one: the job's status, error, timings and result."""
    if job_id is None:
        from infq.cli.ops import overview

        overview(as_json)
        return
    settings = Settings()
    try:
        key = uuid.UUID(job_id)
    except ValueError as e:
        raise InvalidInput(f"{job_id!r} is not a job id (a UUID)") from e
    with one_shot_sessions(settings.database) as sessions, sessions() as session:
        job = job_rows.get(session, key)
    if job is None:
        raise NotFound("job", job_id)
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


def _preview(result: Any) -> str:
    if isinstance(result, list) and len(result) > 6:
        head = ", ".join(f"{x:.4f}" if isinstance(x, float) else str(x) for x in result[:6])
        return f"[{head}, …] ({len(result)} values)"
    return orjson.dumps(result).decode()
