"""Data access for the OpenAI-compatible surface's files and batches (session in, no
commit). Lists are newest first and page by object id, as OpenAI's ``after`` does."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import delete, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from infq.db.models import OpenAIBatch, OpenAIFile

Row = TypeVar("Row", OpenAIFile, OpenAIBatch)


def add_file(session: Session, **values: Any) -> OpenAIFile:
    """Record a file (its bytes are already stored); a file id seen before is kept as
    it is (converting a batch's files twice registers them once)."""
    session.execute(
        insert(OpenAIFile)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[OpenAIFile.tenant_id, OpenAIFile.file_id])
    )
    found = session.get(OpenAIFile, (values["tenant_id"], values["file_id"]))
    assert found is not None  # inserted or already there, in this transaction
    return found


def get_file(session: Session, tenant: str, file_id: str) -> OpenAIFile | None:
    """One file of ``tenant``, or None."""
    return session.get(OpenAIFile, (tenant, file_id))


def delete_file(session: Session, tenant: str, file_id: str) -> None:
    """Forget a file (the caller removes its bytes)."""
    session.execute(
        delete(OpenAIFile).where(OpenAIFile.tenant_id == tenant, OpenAIFile.file_id == file_id)
    )


def get_batch(
    session: Session, tenant: str, batch_id: str, *, lock: bool = False
) -> OpenAIBatch | None:
    """One batch of ``tenant`` (``lock``: held until the transaction ends, so one
    request at a time converts its files)."""
    if lock:
        # Read again under the lock: another request may have converted meanwhile.
        return session.get(
            OpenAIBatch, (tenant, batch_id), with_for_update=True, populate_existing=True
        )
    return session.get(OpenAIBatch, (tenant, batch_id))


def page_of(
    session: Session,
    model: type[Row],
    *,
    tenant: str,
    after: str | None,
    limit: int,
    purpose: str | None = None,
) -> tuple[list[Row], bool] | None:
    """A page of ``tenant``'s files or batches after the object ``after``, newest first;
    None when ``after`` names no object of theirs."""  # fmt: skip
    key = model.file_id if model is OpenAIFile else model.batch_id  # type: ignore[attr-defined]
    stmt = select(model).where(model.tenant_id == tenant)
    if purpose is not None and model is OpenAIFile:
        stmt = stmt.where(OpenAIFile.purpose == purpose)
    if after:
        anchor = session.get(model, (tenant, after))
        if anchor is None:
            return None
        stmt = stmt.where(tuple_(model.created_at, key) < tuple_(anchor.created_at, after))
    rows = list(
        session.scalars(stmt.order_by(model.created_at.desc(), key.desc()).limit(limit + 1))
    )
    return rows[:limit], len(rows) > limit


# Per request line (jobs of one line share ``metadata.openai.line``): completed when
# every job of it succeeded, failed when any ended otherwise.
_LINE_COUNTS = text(
    """
    SELECT count(*) FILTER (WHERE ok), count(*) FILTER (WHERE bad) FROM (
        SELECT bool_and(status = 'succeeded') AS ok,
               bool_or(status IN ('failed', 'rejected', 'cancelled', 'expired')) AS bad
        FROM jobs WHERE tenant_id = :tenant AND batch_id = :batch
        GROUP BY metadata -> 'openai' -> 'line'
    ) AS lines
    """
)


def line_counts(session: Session, tenant: str, batch_id: str) -> tuple[int, int]:
    """(completed, failed) request lines of a batch."""
    row = session.execute(_LINE_COUNTS, {"tenant": tenant, "batch": batch_id}).one()
    return int(row[0]), int(row[1])
