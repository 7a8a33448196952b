"""Alembic environment: run by `lockgate.store.migrations`, never by the alembic CLI.

The caller opens the connection and the transaction and passes the connection in
`config.attributes["connection"]`; this script only runs the migrations on it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from lockgate.store.tables import metadata

VERSION_TABLE = "lockgate_alembic_version"


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("lockgate migrations run through lockgate.store.migrations.migrate()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if __name__ != "lockgate.store.migrations.env":  # alembic runs this file; importing it does nothing
    run()
