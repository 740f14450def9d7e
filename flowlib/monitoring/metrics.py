"""Prometheus metrics read from the monitoring store (served at the dashboard's ``/metrics``).

Families (labels in brackets), for the runs that are still going plus the latest
finished one, so the number of series stays bounded however many runs the store holds:

- ``flowlib_tasks{run_id, app, state}``: tasks currently in each state (gauge).
- ``flowlib_tasks_submitted_total{run_id}``, ``flowlib_tasks_completed_total{run_id}``,
  ``flowlib_tasks_failed_total{run_id}``: counters; ``rate()`` of them gives
  submit and completion rates.
- ``flowlib_workers{run_id}``: workers in active worker pools (gauge).
- ``flowlib_worker_pools{run_id}``: active worker pools (gauge).
- ``flowlib_blocks{run_id, executor, status}``: blocks by their latest status (gauge).
- ``flowlib_run_active{run_id, workflow}``: 1 while a run has no completion time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from flowlib.monitoring import schema as t
from flowlib.monitoring.dashboard import queries as q

_FAILED = ("failed", "dep_fail", "cancelled")
_DONE = ("exec_done", "memo_done", *_FAILED)


def _watched_runs(conn: Any) -> list[tuple[str, str]]:
    w = t.workflow.c
    active = conn.execute(sa.select(w.run_id, w.workflow_name).where(w.time_completed.is_(None))).all()
    latest = conn.execute(
        sa.select(w.run_id, w.workflow_name).where(w.time_completed.is_not(None)).order_by(w.time_began.desc()).limit(1)
    ).all()
    return [(r, n or "") for r, n in [*active, *latest]]


class _StoreCollector:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def collect(self) -> Any:
        tasks = GaugeMetricFamily("flowlib_tasks", "Tasks in each state", labels=["run_id", "app", "state"])
        submitted = CounterMetricFamily("flowlib_tasks_submitted", "Tasks submitted", labels=["run_id"])
        completed = CounterMetricFamily("flowlib_tasks_completed", "Tasks finished", labels=["run_id"])
        failed = CounterMetricFamily("flowlib_tasks_failed", "Tasks finished in a failure state", labels=["run_id"])
        workers = GaugeMetricFamily("flowlib_workers", "Workers in active worker pools", labels=["run_id"])
        pools = GaugeMetricFamily("flowlib_worker_pools", "Active worker pools", labels=["run_id"])
        blocks = GaugeMetricFamily("flowlib_blocks", "Blocks by status", labels=["run_id", "executor", "status"])
        active = GaugeMetricFamily("flowlib_run_active", "1 while the run is going", labels=["run_id", "workflow"])
        c = t.task.c
        with self.engine.connect() as conn:
            runs = _watched_runs(conn)
            for run_id, workflow in runs:
                row = q.run(conn, run_id)
                active.add_metric([run_id, workflow], 1.0 if row and row["time_completed"] is None else 0.0)
                total = done = bad = 0
                for app, state, count in conn.execute(
                    sa.select(c.task_func_name, c.task_status_name, sa.func.count())
                    .where(c.run_id == run_id)
                    .group_by(c.task_func_name, c.task_status_name)
                ):
                    tasks.add_metric([run_id, app, state or ""], count)
                    total += count
                    done += count if state in _DONE else 0
                    bad += count if state in _FAILED else 0
                submitted.add_metric([run_id], total)
                completed.add_metric([run_id], done)
                failed.add_metric([run_id], bad)
                seen = q.workers(conn, run_id)
                live = [n for n in seen["nodes"] if n["active"]]
                pools.add_metric([run_id], len(live))
                workers.add_metric([run_id], sum(n["worker_count"] or 0 for n in live))
                for blk in seen["blocks"]:
                    blocks.add_metric([run_id, blk["executor_label"], blk["status"] or ""], 1)
        yield from (tasks, submitted, completed, failed, workers, pools, blocks, active)


def render(engine: sa.Engine) -> tuple[bytes, str]:
    """The metrics text and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(engine))
    return generate_latest(registry), CONTENT_TYPE_LATEST
