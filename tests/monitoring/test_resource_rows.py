"""The router's resource rows: executor task ids mapped to tries, bad values refused, schema 0001 upgraded."""

from __future__ import annotations

import types

import pytest
import sqlalchemy as sa

from flowlib.monitoring.resources import ResourceRows
from flowlib.monitoring.store import create_engine, current_revision, open_store


def _future(exec_id):
    return types.SimpleNamespace(executor_task_id=exec_id)


def _event(*samples, label="htex"):
    return {"event": "resources", "label": label, "hostname": "node1", "interval": 0.5, "samples": list(samples)}


def test_samples_find_their_try_while_running_and_after_it_ended():
    rows = ResourceRows("run", max_queued=100, interval=0.5)
    record = types.SimpleNamespace(exec_fu=None)
    rows.launched((3, 0), "htex", record)
    record.exec_fu = _future(41)  # the executor's future appears once submit() returns
    rows.accept(_event({"task_id": 41, "timestamp": 10.0, "cpu_percent": 99.5, "memory_resident": 2e8, "pid": 7}))
    (row,) = rows.rows()
    assert (row["task_id"], row["try_id"], row["run_id"], row["hostname"]) == (3, 0, "run", "node1")
    assert (row["psutil_process_cpu_percent"], row["psutil_process_memory_resident"]) == (99.5, 2e8)
    assert row["resource_monitoring_interval"] == 0.5 and row["psutil_process_pid"] == 7
    # A late sample, after the try ended; one for another executor's task of the same id matches nothing.
    rows.ended((3, 0), "htex", record.exec_fu)
    rows.accept(_event({"task_id": 41, "timestamp": 11.0}))
    rows.accept(_event({"task_id": 41, "timestamp": 11.0}, label="other"))
    assert [r["timestamp"] for r in rows.rows()] == [11.0]
    assert rows.unmatched == 1


def test_bad_values_become_null_and_overflow_is_counted():
    rows = ResourceRows("run", max_queued=2, interval=1)
    rows.ended((1, 2), "htex", _future(5))
    bad = {"task_id": 5, "timestamp": 1.0, "cpu_percent": "lots", "memory_resident": float("nan"), "pid": -3}
    rows.accept(_event(bad, {"task_id": "5", "timestamp": 1.0}))
    rows.accept(_event({"task_id": 5, "timestamp": 2.0}))  # over max_queued
    (row,) = rows.rows()
    assert row["psutil_process_cpu_percent"] is None and row["psutil_process_memory_resident"] is None
    assert row["psutil_process_pid"] is None and row["try_id"] == 2
    assert (rows.unmatched, rows.dropped) == (1, 1)


def test_a_revision_0001_database_is_upgraded_with_its_rows(tmp_path):
    from alembic import command
    from alembic.config import Config

    from flowlib.monitoring import store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", store._MIGRATIONS)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.exec_driver_sql(
            "INSERT INTO resource (try_id, task_id, run_id, timestamp, psutil_process_memory_resident) "
            "VALUES (0, 1, 'r', 5.0, 123.0)"
        )
    assert current_revision(engine) == "0001"
    engine.dispose()
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(
                sa.text(
                    "SELECT task_id, psutil_process_memory_resident, hostname, psutil_process_cpu_percent FROM resource"
                )
            ).all() == [(1, 123.0, None, None)]
            indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("resource")}
        assert {"ix_resource_run_task", "ix_resource_run_time"} <= indexes
        assert current_revision(engine) == "0002"
    finally:
        engine.dispose()


@pytest.mark.parametrize("interval", [None, "fast", -1, float("inf")])
def test_a_pool_not_asked_or_asked_badly_starts_no_sampler(interval):
    from flowlib.executors.high_throughput.pool_manager import Manager

    manager = Manager.__new__(Manager)
    manager.sampler = None
    manager.running = {}
    manager.start_sampler(interval)
    assert manager.sampler is None
