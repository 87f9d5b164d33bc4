"""Care preferences in the database, so that every server process reads the same ones.

With one process they lived in a JSON file per profile in the instance folder; processes on
several machines share only the database. One row per profile: what its feedback taught the
care engine, as the JSON the files held.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("profile", sa.String(64), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("preferences")
