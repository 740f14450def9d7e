"""The dashboard's read-only queries; each is one or two indexed statements, bounded by a limit.

The task table pages by key (``task_id`` after the last one shown), never by
OFFSET, so page 1,000 of a 100,000-task run costs what page 1 does.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowlib.monitoring import schema as t

MAX_PAGE = 500
MAX_GANTT = 2_000
_OUTPUT_BYTES = 4_096


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


def runs(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The newest runs first, with their task counts."""
    w = t.workflow
    return _rows(conn.execute(sa.select(w).order_by(w.c.time_began.desc()).limit(limit)))


def run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """One run's workflow row, or None."""
    row = conn.execute(sa.select(t.workflow).where(t.workflow.c.run_id == run_id)).first()
    return None if row is None else dict(row._mapping)


def summary(conn: Connection, run_id: str, buckets: int = 60) -> dict[str, Any]:
    """Counts by state and by app, finished tasks over time (throughput), and the latest status id."""
    task = t.task
    by_state: dict[str, int] = dict(
        conn.execute(
            sa.select(task.c.task_status_name, sa.func.count())
            .where(task.c.run_id == run_id)
            .group_by(task.c.task_status_name)
        ).all()
    )
    by_app: dict[str, dict[str, int]] = {}
    for app, state, count in conn.execute(
        sa.select(task.c.task_func_name, task.c.task_status_name, sa.func.count())
        .where(task.c.run_id == run_id)
        .group_by(task.c.task_func_name, task.c.task_status_name)
    ):
        by_app.setdefault(app, {})[state] = count
    first, last = conn.execute(
        sa.select(sa.func.min(task.c.task_time_invoked), sa.func.max(task.c.task_time_returned)).where(
            task.c.run_id == run_id
        )
    ).one()
    throughput: list[list[float]] = []
    if first is not None and last is not None and last > first:
        width = max((last - first) / buckets, 1e-3)
        bucket = sa.cast((task.c.task_time_returned - first) / width, sa.Integer)
        counts = dict(
            conn.execute(
                sa.select(bucket, sa.func.count())
                .where(task.c.run_id == run_id, task.c.task_time_returned.is_not(None))
                .group_by(bucket)
            ).all()
        )
        throughput = [[first + i * width, counts.get(i, 0) / width] for i in range(buckets + 1)]
    return {
        "by_state": by_state,
        "by_app": by_app,
        "throughput": throughput,
        "time_first": first,
        "time_last": last,
        "last_status_id": last_status_id(conn, run_id),
    }


def last_status_id(conn: Connection, run_id: str) -> int:
    """The newest status row's id in this run (0 when none): the start of a live feed."""
    s = t.status
    return int(conn.execute(sa.select(sa.func.max(s.c.id)).where(s.c.run_id == run_id)).scalar() or 0)


@dataclass(frozen=True)
class TaskFilter:
    """What the task table shows; every field optional."""

    state: str | None = None
    app: str | None = None
    executor: str | None = None
    text: str | None = None
    """A task id, or part of the app name."""
    since: float | None = None
    """Only tasks updated at or after this time."""
    until: float | None = None
    """Only tasks updated at or before this time."""


def _task_conditions(run_id: str, f: TaskFilter) -> list[Any]:
    c = t.task.c
    conditions: list[Any] = [c.run_id == run_id]
    if f.state:
        conditions.append(c.task_status_name == f.state)
    if f.app:
        conditions.append(c.task_func_name == f.app)
    if f.executor:
        conditions.append(c.task_executor == f.executor)
    if f.since is not None:
        conditions.append(c.task_time_updated >= f.since)
    if f.until is not None:
        conditions.append(c.task_time_updated <= f.until)
    if f.text:
        text = f.text.strip()
        if text.isdigit():
            conditions.append(c.task_id == int(text))
        else:
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(c.task_func_name.like(pattern, escape="\\"))
    return conditions


def tasks(conn: Connection, run_id: str, f: TaskFilter, *, after: int | None = None, limit: int = 50) -> dict[str, Any]:
    """One page of the task table (ascending id, after ``after``), the filter's total, the next cursor."""
    c = t.task.c
    limit = max(1, min(limit, MAX_PAGE))
    conditions = _task_conditions(run_id, f)
    page_conditions = [*conditions, c.task_id > after] if after is not None else conditions
    columns = [
        c.task_id,
        c.task_func_name,
        c.task_status_name,
        c.task_executor,
        c.task_time_invoked,
        c.task_time_returned,
        c.task_fail_count,
        c.task_time_updated,
    ]
    rows = _rows(conn.execute(sa.select(*columns).where(*page_conditions).order_by(c.task_id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    total = conn.execute(sa.select(sa.func.count()).select_from(t.task).where(*conditions)).scalar()
    return {"tasks": rows, "total": total, "next": rows[-1]["task_id"] if more and rows else None}


def facets(conn: Connection, run_id: str) -> dict[str, list[str]]:
    """The apps, executors and states present in a run (for the filter menus)."""
    c = t.task.c
    out = {}
    for name, column in (("apps", c.task_func_name), ("executors", c.task_executor), ("states", c.task_status_name)):
        out[name] = sorted(
            v for (v,) in conn.execute(sa.select(column).where(c.run_id == run_id).distinct()) if v is not None
        )
    return out


def _head_tail(path: str | None) -> dict[str, Any] | None:
    if not path or not os.path.isfile(path):
        return None
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_OUTPUT_BYTES)
            tail = b""
            if size > 2 * _OUTPUT_BYTES:
                f.seek(size - _OUTPUT_BYTES)
                tail = f.read(_OUTPUT_BYTES)
            elif size > _OUTPUT_BYTES:
                tail = f.read()
    except OSError:
        return None
    return {"path": path, "size": size, "head": head.decode(errors="replace"), "tail": tail.decode(errors="replace")}


def task_detail(conn: Connection, run_id: str, task_id: int) -> dict[str, Any] | None:
    """Everything about one task: its row, every try (with failures), every state change, std streams."""
    row = conn.execute(sa.select(t.task).where(t.task.c.run_id == run_id, t.task.c.task_id == task_id)).first()
    if row is None:
        return None
    task = dict(row._mapping)
    tr = t.try_.c
    tries = _rows(conn.execute(sa.select(t.try_).where(tr.run_id == run_id, tr.task_id == task_id).order_by(tr.try_id)))
    s = t.status.c
    states = _rows(
        conn.execute(
            sa.select(s.task_status_name, s.task_status_prev, s.timestamp, s.try_id)
            .where(s.run_id == run_id, s.task_id == task_id)
            .order_by(s.id)
        )
    )
    return {
        "task": task,
        "tries": tries,
        "states": states,
        "stdout": _head_tail(task.get("task_stdout")),
        "stderr": _head_tail(task.get("task_stderr")),
    }


def gantt(conn: Connection, run_id: str, limit: int = MAX_GANTT) -> list[dict[str, Any]]:
    """The latest ``limit`` tries with their launch and return times, for the task stream."""
    tr = t.try_.c
    return _rows(
        conn.execute(
            sa.select(
                tr.task_id,
                tr.try_id,
                tr.task_executor,
                tr.hostname,
                tr.block_id,
                tr.task_try_time_launched,
                tr.task_try_time_returned,
                tr.task_exception_type,
            )  # fmt: skip
            .where(tr.run_id == run_id, tr.task_try_time_launched.is_not(None))
            .order_by(tr.task_try_time_launched.desc())
            .limit(limit)
        )
    )


def workers(conn: Connection, run_id: str) -> dict[str, Any]:
    """The latest row of each worker pool (node) and each block, plus the block history."""
    n = t.node.c
    nodes = _rows(conn.execute(sa.select(t.node).where(n.run_id == run_id).order_by(n.timestamp)))
    latest_nodes: dict[str, dict[str, Any]] = {}
    for node in nodes:
        latest_nodes[node["uid"]] = node
    b = t.block.c
    blocks = _rows(conn.execute(sa.select(t.block).where(b.run_id == run_id).order_by(b.timestamp)))
    latest_blocks: dict[tuple[str, str], dict[str, Any]] = {}
    for blk in blocks:
        latest_blocks[(blk["executor_label"], blk["block_id"])] = blk
    return {"nodes": list(latest_nodes.values()), "blocks": list(latest_blocks.values()), "block_history": blocks}


def status_since(conn: Connection, run_id: str, after: int, limit: int = 5_000) -> list[dict[str, Any]]:
    """State changes written after status id ``after`` (the live feed), oldest first."""
    s = t.status.c
    return _rows(
        conn.execute(
            sa.select(s.id, s.task_id, s.task_status_name, s.task_status_prev, s.timestamp, s.try_id)
            .where(s.run_id == run_id, s.id > after)
            .order_by(s.id)
            .limit(limit)
        )
    )


GRAPH_FULL = 500
"""A run with at most this many tasks is drawn whole; above it, by app plus one task's neighbourhood."""
GRAPH_NODES = 300
"""The most tasks a neighbourhood shows."""


def _deps(text: str | None) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip().isdigit()] if text else []


def _layers(nodes: dict[int, dict[str, Any]], edges: list[tuple[int, int]]) -> None:
    """Set each node's ``layer``: its longest path from a source (task ids are a topological order)."""
    preds: dict[int, list[int]] = {}
    for a, b in edges:
        preds.setdefault(b, []).append(a)
    for tid in sorted(nodes):
        nodes[tid]["layer"] = 1 + max((nodes[p]["layer"] for p in preds.get(tid, ()) if p < tid), default=-1)


@dataclass(frozen=True)
class _Structure:
    """Who depends on whom in one run, as of ``total`` tasks (rows are never deleted or re-parented)."""

    database: str
    run_id: str
    total: int
    app_of: dict[int, str]
    parents: dict[int, list[int]]
    children: dict[int, list[int]]
    app_edges: dict[tuple[str, str], int]


class GraphCache:
    """The newest run structure read, so a big run's dependencies are scanned once per new task count.

    One per dashboard app (:func:`~flowlib.monitoring.dashboard.app.create_app`), so two
    dashboards in one process never share what they read.
    """

    def __init__(self) -> None:
        self._last: _Structure | None = None
        self._lock = threading.Lock()

    def structure(self, conn: Connection, run_id: str, total: int) -> _Structure:
        """One pass over (id, app, depends) of a run: by-app edge counts and both directions of every edge."""
        database = str(conn.engine.url)
        with self._lock:
            cached = self._last
        if cached is not None and (cached.database, cached.run_id, cached.total) == (database, run_id, total):
            return cached
        found = _read_structure(conn, database, run_id)
        with self._lock:
            self._last = found
        return found


def _read_structure(conn: Connection, database: str, run_id: str) -> _Structure:
    c = t.task.c
    app_of: dict[int, str] = {}
    children: dict[int, list[int]] = {}
    parents: dict[int, list[int]] = {}
    app_edges: dict[tuple[str, str], int] = {}
    rows = conn.execute(sa.select(c.task_id, c.task_func_name, c.task_depends).where(c.run_id == run_id)).all()
    for tid, app, _ in rows:
        app_of[tid] = app
    for tid, app, deps in rows:
        ds = _deps(deps)
        if ds:
            parents[tid] = ds
            for d in ds:
                children.setdefault(d, []).append(tid)
                key = (app_of.get(d, "?"), app)
                app_edges[key] = app_edges.get(key, 0) + 1
    # Keyed by the count actually read: a task inserted meanwhile only makes the next request scan again.
    return _Structure(database, run_id, len(rows), app_of, parents, children, app_edges)


def graph(
    conn: Connection,
    run_id: str,
    task_id: int | None = None,
    depth: int = 3,
    limit: int = GRAPH_NODES,
    cache: GraphCache | None = None,
) -> dict[str, Any]:
    """The dependency graph of a run, bounded.

    Up to :data:`GRAPH_FULL` tasks: every task and edge. Above: the graph by app
    (app-to-app edge counts, state totals per app) and, when ``task_id`` is given,
    its ancestors and descendants up to ``depth`` steps, at most ``limit`` tasks.
    """
    c = t.task.c
    depth = max(0, min(depth, 50))
    limit = max(1, min(limit, GRAPH_FULL))
    total = int(conn.execute(sa.select(sa.func.count()).where(c.run_id == run_id)).scalar() or 0)
    columns = (c.task_id, c.task_func_name, c.task_status_name, c.task_depends)
    if total <= GRAPH_FULL:
        rows = conn.execute(sa.select(*columns).where(c.run_id == run_id)).all()
        nodes = {r[0]: {"id": r[0], "app": r[1], "state": r[2]} for r in rows}
        edges = [(d, r[0]) for r in rows for d in _deps(r[3]) if d in nodes]
        _layers(nodes, edges)
        return {"mode": "full", "total": total, "nodes": list(nodes.values()), "edges": edges, "apps": None}
    structure = (cache or GraphCache()).structure(conn, run_id, total)
    app_of, parents, children, app_edges = structure.app_of, structure.parents, structure.children, structure.app_edges
    states: dict[str, dict[str, int]] = {}
    for app, state, n in conn.execute(
        sa.select(c.task_func_name, c.task_status_name, sa.func.count())
        .where(c.run_id == run_id)
        .group_by(c.task_func_name, c.task_status_name)
    ):
        states.setdefault(app, {})[state] = n
    apps = {
        "nodes": [{"app": a, "states": s, "count": sum(s.values())} for a, s in sorted(states.items())],
        "edges": [{"from": a, "to": b, "count": n} for (a, b), n in sorted(app_edges.items())],
    }
    out: dict[str, Any] = {"mode": "aggregated", "total": total, "apps": apps, "nodes": [], "edges": [], "task": None}
    if task_id is None or task_id not in app_of:
        return out
    seen = {task_id: 0}
    truncated = False
    for step, index in ((-1, parents), (1, children)):
        frontier = [task_id]
        for level in range(1, depth + 1):
            nxt = []
            for tid in frontier:
                for other in index.get(tid, ()):
                    if other in seen:
                        continue
                    if len(seen) >= limit:
                        truncated = True
                        break
                    seen[other] = step * level
                    nxt.append(other)
            frontier = nxt
    rows = conn.execute(sa.select(*columns).where(c.run_id == run_id, c.task_id.in_(list(seen)))).all()
    nodes = {r[0]: {"id": r[0], "app": r[1], "state": r[2], "distance": seen[r[0]]} for r in rows}
    edges = [(d, r[0]) for r in rows for d in _deps(r[3]) if d in nodes]
    _layers(nodes, edges)
    out.update(task=task_id, depth=depth, truncated=truncated, nodes=list(nodes.values()), edges=edges)
    return out
