"""The history database: tables and a versioned schema.

Versioned by hand rather than with Alembic: the schema is small, and a ``schema_version`` row
plus a list of numbered steps (:data:`MIGRATIONS`) is easy to read and needs no extra tool.
To change the schema, append a step; :func:`migrate` runs the missing ones at start-up, in one
transaction each. docs/history.md lists the versions.

What is stored: sessions, one mood sample per second at most (the smoothed label and the 7
scores of the primary face), the care actions shown and the feedback given. Never an image,
a face crop or a face box.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

from ..vision.types import EMOTIONS

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

profiles = Table(
    "profiles",
    metadata,
    Column("profile", String(64), primary_key=True),
    #: days of history to keep for this profile; 0: forever; NULL: the server's default
    Column("retention_days", Integer, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("profile", String(64), nullable=False, index=True),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("locale", String(8), nullable=True),
    Column("backend", String(16), nullable=True),
)

samples = Table(
    "samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(36), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("emotion", String(16), nullable=False),
    Column("confidence", Float, nullable=False),
    *[Column(name, Float, nullable=False) for name in EMOTIONS],
    Index("ix_samples_session_ts", "session_id", "ts"),
)

care_actions = Table(
    "care_actions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("session_id", String(36), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("ts", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("emotion", String(16), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("music_clip", String(80), nullable=True),
    Column("exercise_id", String(40), nullable=True),
    Column("feedback", String(16), nullable=True),
    Column("feedback_ts", Float, nullable=True),
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[profiles, sessions, samples, care_actions])


#: Schema steps: version N is reached by running MIGRATIONS[N - 1].
MIGRATIONS: list[Callable[[Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(select(schema_version.c.version)).scalar() or 0


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version found before."""
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise RuntimeError(f"the history database is at schema {found}, newer than this EmoCare ({SCHEMA_VERSION})")
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=version))
    return found


__all__ = ["SCHEMA_VERSION", "care_actions", "metadata", "migrate", "profiles", "samples", "sessions"]
