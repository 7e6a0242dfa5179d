"""A batch remembers what was submitted under its id

A publish that failed half-way (the batch row written, some jobs not sent) could not
be retried: the same batch id was refused with 409, and a new id left the first batch
waiting for requests that never came. The batch now keeps a digest of its submission
(`submission_sha256`: the body or file and the options): the same submission under the
same id is a retry and is sent again (its job ids are derived from the batch id and the
line, so nothing is recorded twice); anything else under that id is still refused.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """One nullable column: batches made before it cannot be retried, as before."""
    op.add_column("batches", sa.Column("submission_sha256", sa.String(64)))


def downgrade() -> None:
    """Drop it."""
    op.drop_column("batches", "submission_sha256")
