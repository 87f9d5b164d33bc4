"""The history database: tables and a versioned schema.

Versioned with Alembic (``migrations/versions/``, one file a step), applied at start-up by
:func:`migrate`, so that SQLite on one machine and PostgreSQL under several processes go
through the same steps. To change the schema, change the tables here and add a step
(``alembic -c … revision``, or by hand after the two there); docs/history.md lists them.

What is stored: sessions, one mood sample per second at most (the smoothed label and the 7
scores of the primary face), the care actions shown and the feedback given. Never an image,
a face crop or a face box.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
    Text,
    text,
)
from sqlalchemy.engine import Connection

from ..vision.types import EMOTIONS

log = logging.getLogger(__name__)
# Alembic logs every plugin it sets up at INFO, at every start: only its warnings here
logging.getLogger("alembic").setLevel(logging.WARNING)

metadata = MetaData()

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


preferences = Table(
    "preferences",
    metadata,
    Column("profile", String(64), primary_key=True),
    #: what the profile's feedback taught the care engine (``care.preferences.Preferences``), as JSON
    Column("data", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Where the migrations live: one file a schema version, applied in order by Alembic.
MIGRATIONS = Path(__file__).with_name("migrations")
#: Any constant, the same in every process: PostgreSQL's lock that lets one process migrate at a time.
MIGRATION_LOCK = 0x454D4F43  # "EMOC"


def alembic_config():
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest schema revision this EmoCare knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str | None:
    """Bring the database to the newest revision (Alembic); returns the revision found before.

    Several server processes may start at once on one PostgreSQL: an advisory lock held for
    the transaction lets one migrate while the others wait, then find nothing left to do.
    A database newer than this code is refused rather than used half-understood.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        found = _revision(conn)
        if found is not None and found not in known:
            raise RuntimeError(f"the history database is at schema {found}, newer than this EmoCare ({head()})")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        now = _revision(conn)
    if now != found:
        log.info("history schema migrated from %s to %s", found or "nothing", now)
    return found


__all__ = ["care_actions", "head", "metadata", "migrate", "preferences", "profiles", "samples", "sessions"]
