"""``infq submit``, ``infq precompute`` and ``infq status``: the caller's side of the queue.

Every request of a file is checked as the dispatcher will check it
(:mod:`infq.catalogue.checks`) before the first one is sent: a bad line stops the
command with exit status 4 and one line naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from producers.jsonl import BadLine, HashedCustomIds, iter_requests
from producers.sdk import JobProducer, in_batch_of, new_batch_id
from schemas.jobs import JobRequest

console = Console()


@dataclass(frozen=True)
class _File:
    """A JSONL file of requests, read one line at a time and checked as the dispatcher
    will check them; :class:`InvalidInput` names the first bad line.

    A command reads it twice: :meth:`count` checks every line (nothing is sent while a
    line may still be bad), :meth:`send` sends, so a file of any length costs a chunk of
    memory and a digest per ``custom_id``, never the file.

    The catalogue's default routes pick the revision whose tokenizer counts an input
    (the CLI reads no stored route); under another stored route the dispatcher counts
    again, as it does for every job.
    """

    path: Path
    settings: Settings
    model: str
    batch_id: str
    adjust: Callable[[JobRequest], JobRequest] = lambda r: r

    def count(self) -> int:
        """Check every line (the first pass); how many requests the file holds."""
        return sum(1 for _ in self._requests())

    def pieces(self) -> Iterator[bytes]:
        """The file's bytes, a MiB at a time (for the submission's digest)."""
        with self.path.open("rb") as raw:
            while piece := raw.read(1 << 20):
                yield piece

    def send(self, producer: JobProducer, *, total: int, on_sent: Callable[[int], None]) -> None:
        """Send every request (the second pass). A file that changed since :meth:`count`
        stops the command before the batch is sealed: it never finishes short of jobs."""
        sent = producer.stream_requests(self._requests(), on_sent=on_sent)
        if sent != total:
            raise InvalidInput(f"{self.path} changed while it was sent ({total} lines "
                               f"checked, {sent} sent): the batch stays unsealed; submit "
                               "again")  # fmt: skip

    def _requests(self) -> Iterator[JobRequest]:
        catalogue = for_settings(self.settings)
        catalogue.get(self.model)  # an unknown model is one error, not one per line
        tokens = InputLimits()
        with self.path.open(encoding="utf-8") as lines:
            numbered = iter_requests(lines, model=self.model, batch_id=self.batch_id,
                                     custom_ids=HashedCustomIds(self.path))  # fmt: skip
            while (read := self._next(numbered)) is not None:
                number, request = read
                try:
                    checked = admit(self.adjust(request), catalogue=catalogue, tokens=tokens,
                                    max_input_bytes=self.settings.max_input_bytes)  # fmt: skip
                except RejectedRecord as e:
                    raise InvalidInput(f"{self.path}: line {number}: {e.message}") from e
                yield checked

    def _next(self, numbered: Iterator[tuple[int, JobRequest]]) -> tuple[int, JobRequest] | None:
        try:
            return next(numbered, None)
        except BadLine as e:
            raise InvalidInput(f"{self.path}: {e}") from e
        except UnicodeDecodeError as e:
            raise InvalidInput(f"{self.path}: not UTF-8 ({e.reason})") from e


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
    prints the batch id. A batch id already used is refused, unless for this very file
    and options (a retry after a failure: the jobs already sent are recorded once)."""
    settings = Settings()
    batch = batch_id or new_batch_id()
    options = BatchOptions.parse(completion_window=completion_window, metadata=metadata)
    if output is not None and not wait:
        raise InvalidInput("--output needs --wait (or use `infq batches results B -o FILE`)")
    if webhook_url is not None:
        check_syntax(webhook_url)
    # Job ids derive from the batch and the line: the same file sent again under its
    # batch id after a failure records nothing twice.
    source = _File(file, settings, model, batch, adjust=lambda r: in_batch_of(r, DEFAULT_TENANT))
    total = source.count()
    digest = options.digest(model=model, webhook_url=webhook_url, body=source.pieces())
    # A producer would wait half a minute for a broker that is not there.
    require_reachable(settings, "kafka", "postgres")
    with one_shot_sessions(settings.database) as sessions:
        with sessions.begin() as session:
            accounts.check_room(session, DEFAULT_TENANT, jobs=total, batch_id=batch)
            created = batch_rows.create(
                session, tenant=DEFAULT_TENANT, batch_id=batch, total_jobs=total,
                webhook_url=webhook_url, model=model, metadata=options.metadata,
                expires_at=options.expires_at(), submission_sha256=digest,
            )  # fmt: skip
            key = (DEFAULT_TENANT, batch)
            retry = not created and batch_rows.resumable(session, key, digest)
        if not created and not retry:
            raise Conflict(
                f"batch {batch!r} exists; a batch id names one batch: choose another "
                "(or leave out --batch-id); the same file and options may be sent again "
                "under it until the batch finishes"
            )
        if retry:
            console.print(f"batch {batch} exists with this very file: sending it again")
        with (
            JobProducer(
                settings.kafka, topic=settings.jobs_topic, batches_topic=settings.batches_topic
            ) as producer,
            Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar,
        ):
            task = bar.add_task("submitting", total=total)
            source.send(producer, total=total, on_sent=lambda n: bar.advance(task, n))
            producer.seal_batch(batch, total_jobs=total, webhook_url=webhook_url)
            if wait:
                computing = bar.add_task("computing", total=total)
                follow_batch(sessions, batch, total=total, bar=bar, task=computing,
                             timeout_s=timeout_s)  # fmt: skip
        console.print(f"submitted {total} jobs; batch id: [bold]{batch}[/]")
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
    warm = {"tenant": tenant, "cache": True}
    source = _File(file, settings, model, batch, adjust=lambda r: r.model_copy(update=warm))
    total = source.count()
    require_reachable(settings, "kafka", "postgres")
    with one_shot_sessions(settings.database) as sessions:
        with (
            JobProducer(settings.kafka, topic=settings.jobs_topic) as producer,
            Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console) as bar,
        ):
            sending = bar.add_task("submitting", total=total)
            source.send(producer, total=total, on_sent=lambda n: bar.advance(sending, n))
            computing = bar.add_task("precomputing", total=total)
            follow_batch(
                sessions, batch, total=total, bar=bar, task=computing,
                timeout_s=timeout_s,
            )  # fmt: skip
        with sessions() as session:
            counts = job_rows.count_by_status(session, batch_id=batch)
            cached = job_rows.count_cache_hits(session, batch_id=batch)
    summary = ", ".join(f"{s}: {n}" for s, n in sorted(counts.items()))
    console.print(
        f"precomputed {total} inputs ({summary}; {cached} were already cached); "
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
