"""The results store (issue 10, item 4): every job and campaign in one SQLAlchemy 2
database, SQLite (WAL) by default or PostgreSQL, with versioned alembic migrations.

* :mod:`.schema`: the tables;
* :mod:`.db`: :class:`~hanlab.store.db.ResultsStore` (open, migrate, write with a disk
  spool while the database is away, read);
* :mod:`.migrations`: the alembic revisions.
"""

from hanlab.store.db import ResultsStore, StoreUnavailableError, open_store

__all__ = ["ResultsStore", "StoreUnavailableError", "open_store"]
