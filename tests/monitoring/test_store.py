"""The store: Parsl's tables and columns, WAL mode, schema version, errors that reach the user."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

import flowlib
from flowlib.monitoring import MonitoringHub
from flowlib.monitoring.errors import MonitoringError
from flowlib.monitoring.schema import SCHEMA_VERSION
from flowlib.monitoring.store import current_revision, open_store

# Parsl's monitoring tables and the columns its users query (Parsl's documented schema).
PARSL_COLUMNS = {
    "workflow": {"run_id", "workflow_name", "workflow_version", "time_began", "time_completed", "host", "user",
                 "rundir", "tasks_failed_count", "tasks_completed_count"},
    "task": {"task_id", "run_id", "task_depends", "task_func_name", "task_memoize", "task_hashsum", "task_inputs",
             "task_outputs", "task_stdin", "task_stdout", "task_stderr", "task_time_invoked", "task_time_returned",
             "task_fail_count", "task_fail_cost"},
    "try": {"try_id", "task_id", "run_id", "block_id", "hostname", "task_executor", "task_try_time_launched",
            "task_try_time_running", "task_try_time_returned", "task_fail_history", "task_joins"},
    "status": {"task_id", "task_status_name", "timestamp", "run_id", "try_id"},
    "resource": {"try_id", "task_id", "run_id", "timestamp", "resource_monitoring_interval", "psutil_process_pid",
                 "psutil_process_memory_percent", "psutil_process_children_count", "psutil_process_time_user",
                 "psutil_process_time_system", "psutil_process_memory_virtual", "psutil_process_memory_resident",
                 "psutil_process_disk_read", "psutil_process_disk_write", "psutil_process_status"},
    "node": {"id", "run_id", "hostname", "uid", "block_id", "cpu_count", "total_memory", "active", "worker_count",
             "python_version", "timestamp", "last_heartbeat"},
    "block": {"run_id", "executor_label", "block_id", "job_id", "timestamp", "status"},
}  # fmt: skip

FLOWLIB_TRY_COLUMNS = {"task_exception_type", "task_exception_message", "task_traceback", "task_exit_code",
                       "task_failure_reason"}  # fmt: skip


def test_new_store_has_parsl_tables_wal_and_a_schema_version(tmp_path):
    path = tmp_path / "sub" / "m.db"
    engine = open_store(f"sqlite:///{path}")
    engine.dispose()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for table, columns in PARSL_COLUMNS.items():
            have = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
            assert columns <= have, f"{table} lacks {columns - have}"
        have_try = {row[1] for row in conn.execute('PRAGMA table_info("try")')}
        assert FLOWLIB_TRY_COLUMNS <= have_try
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        conn.close()


def test_opening_again_keeps_the_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = open_store(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO workflow (run_id, time_began, tasks_failed_count, tasks_completed_count)"
                             " VALUES ('r1', 1.0, 0, 0)")  # fmt: skip
    engine.dispose()
    engine = open_store(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT run_id FROM workflow").fetchall() == [("r1",)]
    assert current_revision(engine) == SCHEMA_VERSION
    engine.dispose()


def test_a_database_from_a_newer_flowlib_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = open_store(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(MonitoringError, match="revision '9999'"):
        open_store(url).dispose()


def test_unreachable_server_fails_the_load_naming_it_without_the_password(tmp_path):
    hub = MonitoringHub(logging_endpoint="postgresql+psycopg://someone:secret@127.0.0.1:1/flowlib")
    with pytest.raises(MonitoringError, match=r"127\.0\.0\.1:1") as info:
        flowlib.load(flowlib.Config(run_dir=str(tmp_path), monitoring=hub))
    assert "secret" not in str(info.value)
    flowlib.clear()


def test_unknown_dialect_is_an_error():
    with pytest.raises(MonitoringError, match="nosuchdb"):
        open_store("nosuchdb://x/y")


def test_readers_do_not_block_the_writer(tmp_path):
    """A reader holding a read transaction open (WAL) does not stop writes."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = open_store(url)
    reader = sqlite3.connect(tmp_path / "m.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM status").fetchall()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO workflow (run_id, time_began, tasks_failed_count, tasks_completed_count)"
                             " VALUES ('r2', 1.0, 0, 0)"))  # fmt: skip
    reader.close()
    engine.dispose()
