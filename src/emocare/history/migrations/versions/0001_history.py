"""The history tables: profiles, sessions, one-a-second mood samples, care actions.

The first schema, as EmoCare's hand-rolled migrations made it (their ``schema_version`` table
at 1). A database made by them already has these tables: it is taken over as it is, and the
old version table dropped, so upgrading EmoCare keeps every row.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # frozen with this step


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table("schema_version"):  # made by the hand-rolled migrations, version 1
        op.drop_table("schema_version")
    if inspector.has_table("sessions"):
        return
    op.create_table(
        "profiles",
        sa.Column("profile", sa.String(64), primary_key=True),
        sa.Column("retention_days", sa.Integer, nullable=True),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("profile", sa.String(64), nullable=False, index=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("locale", sa.String(8), nullable=True),
        sa.Column("backend", sa.String(16), nullable=True),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("emotion", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        *[sa.Column(name, sa.Float, nullable=False) for name in EMOTIONS],
        sa.Index("ix_samples_session_ts", "session_id", "ts"),
    )
    op.create_table(
        "care_actions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("emotion", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("music_clip", sa.String(80), nullable=True),
        sa.Column("exercise_id", sa.String(40), nullable=True),
        sa.Column("feedback", sa.String(16), nullable=True),
        sa.Column("feedback_ts", sa.Float, nullable=True),
    )


def downgrade() -> None:
    for table in ("care_actions", "samples", "sessions", "profiles"):
        op.drop_table(table)
