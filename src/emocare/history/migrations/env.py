"""Alembic's environment for the history schema, run by :func:`emocare.history.schema.migrate`.

The connection comes from the caller (``config.attributes["connection"]``), inside the
caller's transaction, so a migration and the lock that serialises concurrent starts are one
unit. ``alembic`` on the command line works too, with ``-x url=…`` or ``DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from emocare.history.schema import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ["DATABASE_URL"]
    with create_engine(url).begin() as connection:
        _run_on(connection)


def _run_on(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; Alembic's batch mode does that for us
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
