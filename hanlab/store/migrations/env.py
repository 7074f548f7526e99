"""Alembic environment of the results database (:mod:`hanlab.store`).

:func:`hanlab.store.db.migrate` runs it with an open connection in
``config.attributes["connection"]``; ``alembic`` on the command line (developers adding
a revision: ``alembic -c hanlab/store/migrations/alembic.ini revision --autogenerate``)
uses ``sqlalchemy.url`` of the ini file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from hanlab.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as opened:
        _run(opened)
