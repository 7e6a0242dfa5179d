"""``infq submit``, ``infq precompute`` and ``infq status``: the caller's side of the queue.

Every request of a file is checked as the dispatcher will check it
(:mod:`infq.catalogue.checks`) before the first one is sent: a bad line stops the
command with exit status 4 and one line naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from infq.batches.follow import follow_batch
from infq.batches.options import BatchOptions
from infq.catalogue.catalogue import for_settings
from infq.catalogue.checks import admit
from infq.catalogue.intake import InputLimits
from infq.cli.batches import finished_batch
from infq.cli.jobs_admin import show
from infq.db import batches as batch_rows
from infq.db import jobs as job_rows
from infq.db.session import one_shot_sessions
from infq.errors import Conflict, InvalidInput, RejectedRecord
from infq.outages import require_reachable
from infq.settings import Settings
from infq.tenants import accounts
from infq.tenants.policy import DEFAULT_TENANT
from infq.webhooks.urls import check_syntax
from producers.jsonl import BadLine, requests_from_lines
from producers.sdk import JobProducer, new_batch_id
from schemas.jobs import JobRequest

console = Console()


def _read_requests(
    file: Path,
    *,
    settings: Settings,
    model: str,
    batch_id: str,
    adjust: Callable[[JobRequest], JobRequest] = lambda r: r,
) -> list[JobRequest]:
    """FILE's requests (each changed by ``adjust``), checked as the dispatcher will
    check them; :class:`InvalidInput` names the first bad line.

    The catalogue's default routes pick the revision whose tokenizer counts an input
    (the CLI reads no stored route); under another stored route the dispatcher counts
    again, as it does for every job.
    """
    catalogue = for_settings(settings)
    catalogue.get(model)  # an unknown model is one error for the file, not one per line
    lines = file.read_text().splitlines()
    try:
        requests = requests_from_lines(lines, model=model, batch_id=batch_id)
    except BadLine as e:
        raise InvalidInput(f"{file}: {e}") from e
    numbers = [n for n, line in enumerate(lines, start=1) if line.strip()]
    tokens = InputLimits()
    checked = []
    for number, request in zip(numbers, requests, strict=True):
        try:
            checked.append(
                admit(
                    adjust(request),
                    catalogue=catalogue,
                    max_input_bytes=settings.max_input_bytes,
                    tokens=tokens,
                )
            )
        except RejectedRecord as e:
            raise InvalidInput(f"{file}: line {number}: {e.message}") from e
    return checked


def submit(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL, one job a line.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model for every job.")],
    batch_id: Annotated[
        str | None, typer.Option(help="Batch id, never used before (generated if absent).")
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="Called (signed) when the whole batch is done.")
    ] = None,
    completion_window: Annotated[
        str | None, typer.Option(help="E.g. 24h: jobs not started by then end expired.")
    ] = None,
    metadata: Annotated[
        str | None, typer.Option(help='A JSON object kept with the batch: {"team": "x"}.')
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the batch with a progress bar until done.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="With --wait: write the results (JSONL) here."),
    ] = None,
    timeout_s: Annotated[float, typer.Option(help="With --wait: give up after this.")] = 3600,
) -> None:
    """Submit every line of FILE as one batch (lines may carry a custom_id), then seal it;
    prints the batch id. A batch id already used is refused."""
    settings = Settings()
    batch = batch_id or new_batch_id()
    options = BatchOptions.parse(completion_window=completion_window, metadata=metadata)
    if output is not None and not wait:
        raise InvalidInput("--output needs --wait (or use `infq batches results B -o FILE`)")
    if webhook_url is not None:
        check_syntax(webhook_url)
    requests = _read_requests(file, settings=settings, model=model, batch_id=batch)
    # A producer would wait half a minute for a broker that is not there.
    require_reachable(settings, "kafka", "postgres")
    with one_shot_sessions(settings.database) as sessions:
        with sessions.begin() as session:
            accounts.check_room(session, DEFAULT_TENANT, jobs=len(requests))
            created = batch_rows.create(
                session, tenant=DEFAULT_TENANT, batch_id=batch, total_jobs=len(requests),
                webhook_url=webhook_url, model=model, metadata=options.metadata,
                expires_at=options.expires_at(),
            )  # fmt: skip
        if not created:
            raise Conflict(
                f"batch {batch!r} exists; a batch id names one batch: choose another "
                "(or leave out --batch-id)"
            )
        with (
            JobProducer(
                settings.kafka, topic=settings.jobs_topic, batches_topic=settings.batches_topic
            ) as producer,
            Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar,
        ):
            task = bar.add_task("submitting", total=len(requests))
            producer.submit_requests(requests, on_sent=lambda n: bar.advance(task, n))
            producer.seal_batch(batch, total_jobs=len(requests), webhook_url=webhook_url)
            if wait:
                computing = bar.add_task("computing", total=len(requests))
                follow_batch(sessions, batch, total=len(requests), bar=bar, task=computing,
                             timeout_s=timeout_s)  # fmt: skip
        console.print(f"submitted {len(requests)} jobs; batch id: [bold]{batch}[/]")
        if wait:
            finished_batch(settings, batch, output=output, timeout_s=timeout_s)


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
    requests = _read_requests(
        file,
        settings=settings,
        model=model,
        batch_id=batch,
        adjust=lambda r: r.model_copy(update={"tenant": tenant, "cache": True}),
    )
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
    With one: the job's status, error, timings and result (as ``infq jobs show``)."""
    if job_id is None:
        from infq.cli.ops import overview

        overview(as_json)
        return
    show(job_id, as_json=as_json)
