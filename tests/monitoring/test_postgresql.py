"""The monitoring store on a real PostgreSQL 15 server (tests/services/postgresql-up.sh)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import require_service

import flowlib
from flowlib.app.app import python_app
from flowlib.monitoring import MonitoringHub
from flowlib.monitoring.schema import SCHEMA_VERSION
from monitoring.pg import postgresql_answers, postgresql_url


@pytest.fixture
def pg_url() -> str:
    require_service("postgresql", postgresql_answers)
    url = postgresql_url()
    assert url is not None
    return url


@python_app
def square(x):
    if x == 7:
        raise ArithmeticError("seven")
    return x * x


def test_a_run_is_recorded_in_postgresql(pg_url, monitored):
    hub = MonitoringHub(logging_endpoint=pg_url, flush_period=0.05, workflow_name="pg-test")
    with flowlib.load(monitored(hub, retries=1)) as dfk:
        futures = [square(i) for i in range(20)]
        results = [f.exception() or f.result() for f in futures]
        run_id = dfk.run_id
    assert isinstance(results[7], ArithmeticError) and results[3] == 9
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == SCHEMA_VERSION
            wf = conn.execute(
                sa.text(
                    "SELECT workflow_name, tasks_completed_count, tasks_failed_count  FROM workflow WHERE run_id=:r"
                ),
                {"r": run_id},
            ).one()
            assert tuple(wf) == ("pg-test", 19, 1)
            count = conn.execute(sa.text("SELECT count(*) FROM status WHERE run_id = :r"), {"r": run_id}).scalar()
            assert count == 19 * 3 + 5  # the failing task: pending, launched, fail_retryable, launched, failed
            tries = conn.execute(
                sa.text(
                    'SELECT try_id, task_exception_type, task_traceback FROM "try" '
                    "WHERE run_id = :r AND task_exception_type IS NOT NULL ORDER BY try_id"
                ),
                {"r": run_id},
            ).all()
            assert [t[0] for t in tries] == [0, 1]
            assert all(t[1] == "builtins.ArithmeticError" and "seven" in t[2] for t in tries)
    finally:
        engine.dispose()
