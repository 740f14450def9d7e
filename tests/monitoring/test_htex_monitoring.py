"""A high-throughput executor under monitoring: pools joining and leaving, and where and when each try ran."""

from __future__ import annotations

import socket

import pytest
from conftest import try_assert

import flowlib
from flowlib.app.app import python_app
from flowlib.executors import HighThroughputExecutor
from flowlib.monitoring import MonitoringHub
from flowlib.providers import LocalProvider


@python_app
def double(x):
    return 2 * x


def test_a_pool_joining_and_leaving_is_recorded_without_polling(monitored, query):
    # Resource monitoring off: no poll of the executors ever runs, so every node row
    # comes from the executor's pool events.
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_enabled=False)
    executor = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=2,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    with flowlib.load(monitored(hub, executors=[executor])) as dfk:
        assert double(21).result(timeout=30) == 42

        def joined():
            return query("SELECT hostname, worker_count, active, block_id, uid, python_version FROM node")

        try_assert(lambda: len(joined()) == 1, timeout=10, message="the registered pool is not in the node table")
        ((hostname, workers, active, block, uid, python),) = joined()
        assert (hostname, workers, active, block) == (socket.gethostname(), 2, 1, "0")
        assert uid and python
        executor.scale_in(1)

        def left():
            return query("SELECT active FROM node WHERE uid = ? ORDER BY timestamp", uid)

        try_assert(lambda: left() == [(1,), (0,)], timeout=20, message=f"the pool's leaving is not recorded: {left()}")
        run_id = dfk.run_id
    assert query("SELECT count(*) FROM node WHERE run_id = ?", run_id) == [(2,)]


@python_app
def fails():
    raise ValueError("on the worker")


def test_tries_record_the_worker_side_times_and_host(monitored, query):
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_enabled=False)
    executor = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=2,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
    )
    with flowlib.load(monitored(hub, executors=[executor])):
        futures = [double(i) for i in range(20)]
        bad = fails()
        assert [f.result(timeout=30) for f in futures] == [2 * i for i in range(20)]
        with pytest.raises(ValueError):
            bad.result(timeout=30)
    rows = query(
        "SELECT task_id, task_try_time_launched, task_try_time_running, task_try_time_returned, hostname, block_id "
        "FROM try ORDER BY task_id"
    )
    assert len(rows) == 21
    for task_id, launched, running, returned, hostname, block in rows:
        # The pool's clock is this machine's: the worker started after the kernel launched
        # the try and before the kernel saw its result.
        assert launched <= running <= returned, (task_id, launched, running, returned)
        assert (hostname, block) == (socket.gethostname(), "0")
    ((exception_type,),) = query("SELECT task_exception_type FROM try WHERE task_id = ?", bad.tid)
    assert exception_type == "builtins.ValueError"


@pytest.mark.parametrize("strategy", ["none", "htex_auto_scale"])
def test_each_block_state_change_is_a_block_row_without_polling(monitored, query, strategy):
    # No resource polling: the rows come from the executor's block events, the first PENDING at submit.
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_enabled=False)
    executor = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=1,
        provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=0),
    )
    config = monitored(hub, executors=[executor], strategy=strategy, strategy_period=0.1)
    with flowlib.load(config) as dfk:
        assert double(1).result(timeout=30) == 2
        run_id = dfk.run_id
    rows = query("SELECT block_id, status, job_id FROM block WHERE run_id = ? ORDER BY timestamp", run_id)
    states = [status for _, status, _ in rows]
    assert {block for block, _, _ in rows} == {"0"}
    assert states[0] == "PENDING" and states.count("PENDING") == 1
    assert states[1] == "RUNNING"  # a LocalProvider's block runs from its submit on
    assert states[-1] == "SCALED_IN" and states.count("SCALED_IN") == 1
    assert all(job for _, _, job in rows)
