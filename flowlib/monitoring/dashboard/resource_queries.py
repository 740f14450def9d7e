"""The dashboard's resource queries: per-node and per-try series, downsampled to a bounded number of points.

Per node, the samples of one pass (one timestamp per pool) are summed over the
node's tasks, then averaged into at most ``points`` time buckets; per try, at
most ``points`` samples are returned (evenly thinned). Both use the
``resource`` indexes (``run_id, timestamp`` and ``run_id, task_id``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowlib.monitoring import schema as t

MAX_POINTS = 400


def run_resources(conn: Connection, run_id: str, points: int = 200) -> dict[str, Any]:
    """CPU percent and resident memory over time, per node: ``{"nodes": {host: [[t, cpu, rss], ...]}}``."""
    points = max(2, min(points, MAX_POINTS))
    r = t.resource.c
    first, last = conn.execute(
        sa.select(sa.func.min(r.timestamp), sa.func.max(r.timestamp)).where(r.run_id == run_id)
    ).one()
    if first is None:
        return {"nodes": {}, "time_first": None, "time_last": None}
    width = max((last - first) / (points - 1), 1e-6)
    per_pass = (
        sa.select(
            r.hostname.label("host"),
            r.timestamp.label("ts"),
            sa.func.sum(r.psutil_process_cpu_percent).label("cpu"),
            sa.func.sum(r.psutil_process_memory_resident).label("rss"),
        )
        .where(r.run_id == run_id)
        .group_by(r.hostname, r.timestamp)
        .subquery()
    )
    bucket = sa.cast((per_pass.c.ts - first) / width, sa.Integer).label("b")
    rows = conn.execute(
        sa.select(per_pass.c.host, bucket, sa.func.avg(per_pass.c.cpu), sa.func.avg(per_pass.c.rss))
        .group_by(per_pass.c.host, bucket)
        .order_by(per_pass.c.host, bucket)
    ).all()
    nodes: dict[str, list[list[float | None]]] = {}
    for host, b, cpu, rss in rows:
        nodes.setdefault(host or "?", []).append([first + b * width, cpu, rss])
    return {"nodes": nodes, "time_first": first, "time_last": last}


def task_resources(conn: Connection, run_id: str, task_id: int, points: int = MAX_POINTS) -> dict[str, Any]:
    """One task's samples by try: ``{"tries": {try_id: [{timestamp, cpu, rss, ...}, ...]}}`` (thinned)."""
    points = max(2, min(points, MAX_POINTS))
    r = t.resource.c
    rows = conn.execute(
        sa.select(
            r.try_id,
            r.timestamp,
            r.hostname,
            r.psutil_process_cpu_percent.label("cpu_percent"),
            r.psutil_process_memory_resident.label("memory_resident"),
            r.psutil_process_memory_virtual.label("memory_virtual"),
            r.psutil_process_time_user.label("time_user"),
            r.psutil_process_time_system.label("time_system"),
            r.psutil_process_disk_read.label("disk_read"),
            r.psutil_process_disk_write.label("disk_write"),
            r.psutil_process_num_threads.label("num_threads"),
            r.psutil_process_children_count.label("children_count"),
        )
        .where(r.run_id == run_id, r.task_id == task_id)
        .order_by(r.try_id, r.timestamp)
    ).all()
    tries: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        sample = dict(row._mapping)
        tries.setdefault(sample.pop("try_id"), []).append(sample)
    for try_id, samples in tries.items():
        if len(samples) > points:
            step = len(samples) / points
            tries[try_id] = [samples[int(i * step)] for i in range(points - 1)] + [samples[-1]]
    return {"tries": {str(k): v for k, v in tries.items()}}
