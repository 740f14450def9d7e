"""Where the PostgreSQL server of tests/services/postgresql-up.sh is, and a probe for require_service."""

from __future__ import annotations

import os

URL_FILE = os.path.join(os.environ.get("PG_DIR", "/tmp/flowlib-postgresql"), "url")


def postgresql_url() -> str | None:
    """The SQLAlchemy URL of the test server (``FLOWLIB_PG_URL`` or the file postgresql-up.sh writes)."""
    url = os.environ.get("FLOWLIB_PG_URL")
    if url:
        return url
    try:
        with open(URL_FILE) as f:
            return f.read().strip() or None
    except OSError:
        return None


def postgresql_answers() -> bool:
    url = postgresql_url()
    if url is None:
        return False
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT 1").scalar() == 1
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()
