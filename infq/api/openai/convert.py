"""A finished infq batch's results as OpenAI's output and error files.

Read once, lazily, by the first retrieve or list that sees the batch finished: the
batch's jobs in input order (``batch_index``), the jobs of one request line together
(``metadata.openai.line``), each line written to a temporary file and the files
streamed to the store; a batch of millions never sits in memory. The OpenAI batch row
is locked meanwhile, and the file ids are derived from the batch id, so requests that
race convert once and all answer the same ids.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from infq.api.openai import generation, lines, missing
from infq.api.openai.missing import Incomplete
from infq.batches.files import ObjectCache, line_of
from infq.catalogue.catalogue import Catalogue
from infq.catalogue.intake import InputLimits
from infq.db import batches as batch_rows
from infq.db import openai_objects
from infq.db.models import Job, OpenAIBatch
from infq.errors import InfqError
from infq.results.layout import write_line
from infq.results.store import ResultStore


@dataclass(frozen=True)
class Converter:
    """What conversion reads with: the store, and the catalogue's tokenizers."""

    store: ResultStore
    catalogue: Catalogue
    tokens: InputLimits

    def convert(self, session: Session, row: OpenAIBatch) -> None:
        """Write and register both files of ``row``'s finished batch (``row`` locked by
        the caller's transaction; a no-op when another request already did it)."""
        if row.output_file_id is not None:
            return
        stmt = (
            select(Job)
            .where(Job.tenant_id == row.tenant_id, Job.batch_id == row.batch_id)
            .order_by(Job.batch_index.nulls_last(), Job.created_at, Job.job_id)
            .execution_options(yield_per=1000)
        )
        objects = ObjectCache(self.store)
        short = self._incomplete(session, row)
        with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
            for group in _by_line(session.scalars(stmt)):
                number = int(group[0].metadata_.get("openai", {}).get("line", 0))
                if number in short:
                    write_line(errors, self._missing(row, short.pop(number)))
                    continue
                ok, line = self._line(row, group, objects)
                write_line(output if ok else errors, line)
            for number in sorted(short):  # lines none of whose jobs arrived
                write_line(errors, self._missing(row, short[number]))
            row.output_file_id = self._register(session, row, output, "output")
            row.error_file_id = self._register(session, row, errors, "errors")

    def _incomplete(self, session: Session, row: OpenAIBatch) -> dict[int, Incomplete]:
        """The lines of an expired batch that lack jobs (see :mod:`.missing`)."""
        batch = batch_rows.get(session, (row.tenant_id, row.batch_id))
        if batch is None or batch.expired_at is None or not batch.total_jobs:
            return {}
        present = missing.arrived(session, row, total_jobs=batch.total_jobs)
        if sum(present) == batch.total_jobs:
            return {}
        return missing.incomplete_lines(session, self.store, row, present)

    @staticmethod
    def _missing(row: OpenAIBatch, line: Incomplete) -> dict[str, Any]:
        return lines.error_line(
            line_id=lines.request_line_id(row.batch_id, line.line), custom_id=line.custom_id,
            code="missing", message=line.message,
        )  # fmt: skip

    def _line(
        self, row: OpenAIBatch, jobs: list[Job], objects: ObjectCache
    ) -> tuple[bool, dict[str, Any]]:
        first = jobs[0]
        meta = first.metadata_.get("openai", {})
        custom_id = first.custom_id or ""
        line_id = lines.request_line_id(row.batch_id, int(meta.get("line", 0)))
        results = []
        for job in jobs:
            ok, line = line_of(job, objects)
            if not ok:
                error = line["error"]
                return False, lines.error_line(
                    line_id=line_id, custom_id=custom_id,
                    code=error.get("code") or job.status, message=error.get("message") or "",
                )  # fmt: skip
            results.append(line["result"])
        if row.endpoint in (lines.CHAT, lines.COMPLETIONS):
            # One job per line: its generate result is the single choice.
            build = (
                generation.chat_body if row.endpoint == lines.CHAT else generation.completion_body
            )
            finished = first.finished_at or first.created_at
            body = build(
                dict(results[0]), response_id=first.job_id.hex, model=first.model,
                created=int(finished.timestamp()),
            )  # fmt: skip
            return True, lines.output_line(
                line_id=line_id, custom_id=custom_id, request_id=str(first.job_id), body=body
            )
        vectors = results
        body = lines.embeddings_body(
            vectors, model=first.model, encoding_format=str(meta.get("encoding_format", "float")),
            prompt_tokens=sum(self._tokens(job) for job in jobs),
        )  # fmt: skip
        return True, lines.output_line(
            line_id=line_id, custom_id=custom_id, request_id=str(first.job_id), body=body
        )

    def _tokens(self, job: Job) -> int:
        text = (job.input or {}).get("text", "")
        try:
            entry = self.catalogue.get(job.model)
            revision = entry.revision(job.model_revision or entry.revisions[0].name)
            return self.tokens.count(entry, revision, text) or 0
        except (InfqError, KeyError):
            return 0  # a model gone from the catalogue since: no tokenizer to count with

    def _register(self, session: Session, row: OpenAIBatch, file: BinaryIO, name: str) -> str:
        file_id = derived_file_id(row.batch_id, name)
        size = file.tell()
        file.seek(0)
        key = file_key(row.tenant_id, file_id)
        uri = self.store.put_file(key, file)
        openai_objects.add_file(
            session, tenant_id=row.tenant_id, file_id=file_id, uri=uri, size_bytes=size,
            filename=f"{row.batch_id}_{name}.jsonl", purpose="batch_output",
        )  # fmt: skip
        return file_id


def file_key(tenant: str, file_id: str) -> str:
    """Where a file's bytes live in the store (under the tenant's prefix)."""
    return f"openai/{tenant}/files/{file_id}.jsonl"


def derived_file_id(batch_id: str, name: str) -> str:
    """The id of a batch's converted file: the same for every request that converts."""
    return "file-" + hashlib.sha256(f"{batch_id}:{name}".encode()).hexdigest()[:24]


def _by_line(jobs: Iterator[Job] | Any) -> Iterator[list[Job]]:
    """Consecutive jobs of one request line, together."""
    group: list[Job] = []
    for job in jobs:
        line = job.metadata_.get("openai", {}).get("line")
        if group and group[0].metadata_.get("openai", {}).get("line") != line:
            yield group
            group = []
        group.append(job)
    if group:
        yield group
