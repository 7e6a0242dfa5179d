"""Which request lines of an expired OpenAI batch never reached infq, whole or in part.

A batch's jobs are published after its rows are written (:mod:`infq.api.jobs`); a
publish that fails half-way leaves a batch short of jobs, which expires at its window
(:mod:`infq.db.batches`). infq's own error file names each missing request by its
``batch_index``; an OpenAI client needs the *line*, by ``custom_id``. The jobs carry
their line, but a line none of whose jobs arrived has no row to tell it, and an
embeddings line of several inputs may have arrived in part. So the input file is read
again (its lines were all valid when the batch was created: the batch exists), each
line's job count taken from it, and the lines whose ``batch_index`` range has a gap
are the incomplete ones. Only an expired batch short of jobs pays for this.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from infq.api.openai import lines
from infq.api.openai.stored import lines_of
from infq.db import openai_objects
from infq.db.models import Job, OpenAIBatch
from infq.results.store import ResultStore

MESSAGE = (
    "{missing} of this request's {jobs} inputs never reached infq before the "
    "batch's completion window ended."
)


@dataclass(frozen=True)
class Incomplete:
    """A request line some of whose jobs never arrived."""

    line: int
    custom_id: str
    jobs: int
    missing: int

    @property
    def message(self) -> str:
        """What the error line says."""
        return MESSAGE.format(missing=self.missing, jobs=self.jobs)


def arrived(session: Session, row: OpenAIBatch, *, total_jobs: int) -> bytearray:
    """A byte per ``batch_index`` of the batch's ``total_jobs``: 1 where its job
    reached infq (a byte, not a set of ints: a million-job batch takes 1 MB)."""
    present = bytearray(total_jobs)
    stmt = select(Job.batch_index).where(
        Job.tenant_id == row.tenant_id, Job.batch_id == row.batch_id
    )
    for i in session.scalars(stmt.execution_options(yield_per=10_000)):
        if i is not None and 0 <= i < total_jobs:
            present[i] = 1
    return present


def incomplete_lines(
    session: Session, store: ResultStore, row: OpenAIBatch, present: bytearray
) -> dict[int, Incomplete]:
    """The request lines (by line number) some of whose jobs ``present`` lacks; empty
    when the input file is gone (retention): nothing is left to tell the lines by."""
    source = openai_objects.get_file(session, row.tenant_id, row.input_file_id)
    if source is None:
        return {}
    found: dict[int, Incomplete] = {}
    first = 0
    for number, raw in lines_of(store, source.uri, source.size_bytes):
        if not raw.strip():
            continue
        if row.endpoint == lines.EMBEDDINGS:
            request = lines.parse_line(raw, line=number, endpoint=row.endpoint)
            custom_id, jobs = request.custom_id, len(request.inputs)
        else:  # chat or completions: one job a line
            custom_id, jobs = lines.envelope(raw, line=number, endpoint=row.endpoint)[0], 1
        missing = jobs - sum(present[first : first + jobs])
        if missing:
            found[number] = Incomplete(number, custom_id, jobs, missing)
        first += jobs
    return found
