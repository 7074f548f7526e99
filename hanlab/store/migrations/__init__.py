"""Alembic migrations of the results database (:mod:`hanlab.store`)."""
