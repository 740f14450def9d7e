"""With resource monitoring on, the router polls ``executor.connected_managers()``
(Parsl's method form, which works since ``connected_managers`` is a callable list)
and the node table holds the pool; cleanup does not wait on a stopped interchange.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import try_assert

import flowlib
from flowlib import python_app
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.monitoring import MonitoringHub
from flowlib.providers import LocalProvider

pytestmark = pytest.mark.timeout(60)


@python_app
def triple(x: int) -> int:
    return 3 * x


def test_worker_pool_recorded_in_node_table(monitored: Any, query: Any) -> None:
    executor = HighThroughputExecutor(
        label="htex", max_workers_per_node=1, provider=LocalProvider(init_blocks=1, max_blocks=1)
    )
    hub = MonitoringHub(flush_period=0.05, resource_monitoring_interval=0.2)
    with flowlib.load(monitored(hub=hub, executors=[executor], strategy="none")):
        assert triple(2).result(timeout=40) == 6
        try_assert(lambda: len(executor.connected_managers) == 1, timeout=20, message="no pool registered")
        (pool,) = executor.connected_managers()
        # The pool's own events write node rows too; the poll may add its own: compare as a set.
        try_assert(
            lambda: set(query("SELECT uid, block_id FROM node WHERE active = 1")) == {(str(pool["pool_id"]), "0")},
            timeout=20,
            message=f"node table: {query('SELECT * FROM node')}",
        )
