"""The OpenAI-compatible surface: its files (uploads and converted batch files) and
what its batches add to infq's own

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Two tables, each keyed by tenant and object id, listed newest first."""
    op.create_table(
        "openai_files",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("file_id", sa.String(64), primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
    )  # fmt: skip
    op.create_index("ix_openai_files_listing", "openai_files", ["tenant_id", "created_at"])
    op.create_table(
        "openai_batches",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("batch_id", sa.String(128), primary_key=True),
        sa.Column("input_file_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("total_requests", sa.Integer, server_default=sa.text("0"), nullable=False),
        sa.Column("metadata", JSONB),
        sa.Column("errors", JSONB),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
        sa.Column("output_file_id", sa.String(64)),
        sa.Column("error_file_id", sa.String(64)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
    )  # fmt: skip
    op.create_index("ix_openai_batches_listing", "openai_batches", ["tenant_id", "created_at"])


def downgrade() -> None:
    """Drop both tables (the infq batches and the stored objects stay)."""
    op.drop_table("openai_batches")
    op.drop_table("openai_files")
