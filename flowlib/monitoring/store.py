"""Opening the monitoring database: engine, SQLite settings, schema migrations.

SQLite databases run in WAL mode, so dashboard readers never block the writer
(and a reader killed mid-query leaves nothing locked). Any other SQLAlchemy URL
(PostgreSQL: ``postgresql+psycopg://...``) is used as given.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from flowlib.monitoring.errors import MonitoringError
from flowlib.monitoring.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)

_MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=OFF")
    finally:
        cursor.close()


def create_engine(url: str, *, readonly: bool = False) -> Engine:
    """An engine for ``url``; for SQLite, WAL mode and a busy timeout, and the directory made (writers)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as e:
        raise MonitoringError(f"not a database URL: {url!r} ({e})") from e
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path and path != ":memory:":
            if readonly and not os.path.exists(path):
                raise MonitoringError(f"no monitoring database at {path}")
            if not readonly:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except Exception as e:  # unknown dialect, missing driver
        raise MonitoringError(f"cannot use the monitoring database {_safe(url)}: {e}") from e
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _safe(url: str) -> str:
    """``url`` with any password hidden."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database URL>"


def current_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the database (None: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to :data:`~flowlib.monitoring.schema.SCHEMA_VERSION` (creating it if absent).

    Raises MonitoringError for a database that cannot be reached or that a newer
    flowlib wrote (an unknown revision).
    """
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", _MIGRATIONS)
    known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
    try:
        found = current_revision(engine)
        if found == SCHEMA_VERSION:
            return
        if found is not None and found not in known:
            raise MonitoringError(
                f"the monitoring database {_safe(str(engine.url))} has schema revision {found!r}, "
                f"unknown to this flowlib (newest known: {SCHEMA_VERSION!r}); use a newer flowlib or another database"
            )
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except MonitoringError:
        raise
    except sa.exc.SQLAlchemyError as e:
        raise MonitoringError(f"cannot open the monitoring database {_safe(str(engine.url))}: {e}") from e
    logger.info("monitoring database %s at schema revision %s", _safe(str(engine.url)), SCHEMA_VERSION)


def open_store(url: str) -> Engine:
    """An engine for ``url`` with the schema up to date (for writers)."""
    engine = create_engine(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def safe_url(url: str) -> str:
    """``url`` for messages and logs: any password replaced by ``***``."""
    return _safe(url)
