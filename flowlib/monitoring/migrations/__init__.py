"""Alembic migrations of the monitoring schema (run by :func:`flowlib.monitoring.store.upgrade`)."""
