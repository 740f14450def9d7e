"""Worker pools joining and leaving a high-throughput executor reach the node table as they happen."""

from __future__ import annotations

import socket

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
